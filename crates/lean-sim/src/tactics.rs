//! Tactic mode: proof states as goals with hypotheses, printed as Lean
//! prints them, and a small model of what common tactics do to the main
//! goal (see docs/lean-sim.md, "Tactic mode"). It never checks
//! mathematics: a tactic it does not model closes the main goal.

use serde::{Deserialize, Serialize};

/// One goal: an optional case tag, hypotheses in order, and the target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Goal {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case: Option<String>,
    pub hyps: Vec<(String, String)>,
    pub target: String,
}

impl Goal {
    /// As Lean prints a goal: `case tag`, hypotheses (consecutive ones of
    /// one type share a line: `p q : Prop`), then `⊢ target`.
    pub fn render(&self, mathlib: bool) -> String {
        let mut lines = Vec::new();
        if let Some(case) = &self.case {
            lines.push(format!("case {case}"));
        }
        let mut index = 0;
        while index < self.hyps.len() {
            let kind = &self.hyps[index].1;
            let mut names = vec![self.hyps[index].0.as_str()];
            while index + 1 < self.hyps.len() && self.hyps[index + 1].1 == *kind {
                index += 1;
                names.push(self.hyps[index].0.as_str());
            }
            lines.push(format!("{} : {}", names.join(" "), notation(kind, mathlib)));
            index += 1;
        }
        lines.push(format!("⊢ {}", notation(&self.target, mathlib)));
        lines.join("\n")
    }

    fn with_target(&self, target: &str) -> Goal {
        Goal {
            target: target.trim().to_string(),
            ..self.clone()
        }
    }

    fn tagged(mut self, case: &str) -> Goal {
        self.case = Some(case.to_string());
        self
    }

    fn hypothesis(&self, name: &str) -> Option<&str> {
        self.hyps
            .iter()
            .rev()
            .find(|(hyp, _)| hyp == name)
            .map(|(_, kind)| kind.as_str())
    }
}

/// A type as Lean prints it: parentheses its operators make redundant
/// dropped, and with Mathlib, its notation for the number types.
fn notation(text: &str, mathlib: bool) -> String {
    let text = drop_redundant_parentheses(text);
    if !mathlib {
        return text;
    }
    let text = text.as_str();
    let mut out = String::new();
    for (word, is_word) in words(text) {
        let replaced = match (is_word, word) {
            (true, "Nat") => "ℕ",
            (true, "Int") => "ℤ",
            (true, "Rat") => "ℚ",
            (true, "Real") => "ℝ",
            (true, "Complex") => "ℂ",
            _ => word,
        };
        out.push_str(replaced);
    }
    out
}

/// Infix operators: precedence and associativity (`Some(true)` left,
/// `Some(false)` right, `None` neither), as Lean and Mathlib declare them.
const OPERATORS: &[(&str, u32, Option<bool>)] = &[
    ("↔", 20, None),
    ("→", 25, Some(false)),
    ("∨", 30, Some(false)),
    ("∧", 35, Some(false)),
    ("=", 50, None),
    ("≠", 50, None),
    ("<", 50, None),
    (">", 50, None),
    ("≤", 50, None),
    ("≥", 50, None),
    ("∣", 50, None),
    ("∈", 50, None),
    ("∉", 50, None),
    ("+", 65, Some(true)),
    ("-", 65, Some(true)),
    ("*", 70, Some(true)),
    ("/", 70, Some(true)),
    ("%", 70, Some(true)),
    ("^", 75, Some(false)),
];

/// Words after which what follows extends as far as it can: a group
/// holding one keeps its parentheses.
const BINDING_WORDS: &[&str] = &[
    "fun", "λ", "∀", "∃", "let", "if", "then", "else", "match", "by", "show", "have",
];

#[derive(Debug)]
enum Piece {
    Text(String),
    Group(Vec<Piece>),
}

fn parse_pieces(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    while let Some(c) = chars.next() {
        match c {
            '(' => {
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Group(parse_pieces(chars)));
            }
            ')' => break,
            _ => text.push(c),
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    pieces
}

/// The tokens of a piece of text: operators as listed, other symbols one
/// character each, identifiers and numbers whole.
fn text_tokens(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c.is_whitespace() {
            rest = &rest[c.len_utf8()..];
        } else if is_ident_char(c) {
            let end = rest
                .char_indices()
                .find(|(_, c)| !is_ident_char(*c))
                .map_or(rest.len(), |(index, _)| index);
            tokens.push(rest[..end].to_string());
            rest = &rest[end..];
        } else {
            let operator = OPERATORS
                .iter()
                .map(|(symbol, _, _)| *symbol)
                .find(|symbol| rest.starts_with(symbol))
                .unwrap_or(&rest[..c.len_utf8()]);
            tokens.push(operator.to_string());
            rest = &rest[operator.len()..];
        }
    }
    tokens
}

fn operator(token: &str) -> Option<(u32, Option<bool>)> {
    OPERATORS
        .iter()
        .find(|(symbol, _, _)| *symbol == token)
        .map(|(_, precedence, associativity)| (*precedence, *associativity))
}

/// The loosest operator at the top level of a group's pieces, or `None`
/// when the group must keep its parentheses whatever surrounds it (a
/// binder, a tuple, an ascription, a symbol the table does not know).
fn loosest(pieces: &[Piece]) -> Option<u32> {
    let mut loosest = u32::MAX;
    let mut previous_is_operand = false;
    for piece in pieces {
        match piece {
            Piece::Group(_) => previous_is_operand = true,
            Piece::Text(text) => {
                for token in text_tokens(text) {
                    if BINDING_WORDS.contains(&token.as_str()) {
                        return None;
                    }
                    if let Some((precedence, _)) = operator(&token) {
                        // A prefix minus binds tightly; an infix one is a sum.
                        if previous_is_operand {
                            loosest = loosest.min(precedence);
                        }
                        previous_is_operand = false;
                    } else if token.chars().next().is_some_and(is_ident_char) {
                        previous_is_operand = true;
                    } else if token == "¬" {
                        loosest = loosest.min(40);
                        previous_is_operand = false;
                    } else {
                        return None;
                    }
                }
            }
        }
    }
    Some(loosest)
}

fn render_pieces(pieces: &[Piece]) -> String {
    let mut out = String::new();
    for (index, piece) in pieces.iter().enumerate() {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Group(inner) => {
                let rendered = render_pieces(inner);
                if group_is_redundant(pieces, index, inner) {
                    out.push_str(&rendered);
                } else {
                    out.push('(');
                    out.push_str(&rendered);
                    out.push(')');
                }
            }
        }
    }
    out
}

/// Whether Lean would print the group at `index` without its parentheses:
/// its loosest operator binds tighter than what stands on either side.
fn group_is_redundant(pieces: &[Piece], index: usize, inner: &[Piece]) -> bool {
    let Some(inner_precedence) = loosest(inner) else {
        return false;
    };
    // What stands left: an infix operator (its right operand), `¬`, the
    // start, or an operand (then the group is an argument: kept).
    let left = match index.checked_sub(1).map(|at| &pieces[at]) {
        None => None,
        Some(Piece::Group(_)) => return false,
        Some(Piece::Text(text)) => {
            let tokens = text_tokens(text);
            match tokens.last() {
                None => None,
                Some(token) if token == "¬" => Some((40, Some(false))),
                Some(token) => match operator(token) {
                    // A minus after nothing or another operator is a negation.
                    Some(_) if token == "-" && tokens.len() < 2 && index < 2 => Some((75, None)),
                    Some(found) => Some(found),
                    None => return false,
                },
            }
        }
    };
    let right = match pieces.get(index + 1) {
        None => None,
        Some(Piece::Group(_)) => return false,
        Some(Piece::Text(text)) => match text_tokens(text).first() {
            None => None,
            Some(token) => match operator(token) {
                Some(found) => Some(found),
                None => return false,
            },
        },
    };
    let fits_left = match left {
        None => true,
        // The right operand of a right-associative operator may be as loose.
        Some((precedence, Some(false))) => inner_precedence >= precedence,
        Some((precedence, _)) => inner_precedence > precedence,
    };
    let fits_right = match right {
        None => true,
        // The left operand of a left-associative operator may be as loose.
        Some((precedence, Some(true))) => inner_precedence >= precedence,
        Some((precedence, _)) => inner_precedence > precedence,
    };
    fits_left && fits_right
}

/// `text` with the parentheses Lean's printer would not print left out.
fn drop_redundant_parentheses(text: &str) -> String {
    if !text.contains('(') {
        return text.to_string();
    }
    let mut chars = text.chars().peekable();
    let pieces = parse_pieces(&mut chars);
    if chars.peek().is_some() {
        // Unbalanced: leave it as written.
        return text.to_string();
    }
    render_pieces(&pieces)
}

/// `text` cut into identifiers (`true`) and everything between (`false`).
fn words(text: &str) -> Vec<(&str, bool)> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut in_word = false;
    for (index, c) in text.char_indices() {
        let word_char = is_ident_char(c);
        if word_char != in_word && index > start {
            pieces.push((&text[start..index], in_word));
            start = index;
        }
        in_word = word_char;
    }
    if start < text.len() {
        pieces.push((&text[start..], in_word));
    }
    pieces
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '\'' | '!' | '?' | '✝')
}

/// The goal of a declaration with this signature: its binders become
/// hypotheses, the type after the last top-level `:` the target.
pub fn goal_of_signature(signature: &str) -> Goal {
    let chars: Vec<char> = signature.chars().collect();
    let mut depth = 0i32;
    let mut last_colon = None;
    for (index, c) in chars.iter().enumerate() {
        match c {
            '(' | '[' | '{' | '⦃' => depth += 1,
            ')' | ']' | '}' | '⦄' => depth -= 1,
            ':' if depth == 0 && chars.get(index + 1) != Some(&'=') => last_colon = Some(index),
            _ => {}
        }
    }
    let (binders, statement): (String, String) = match last_colon {
        Some(index) => (
            chars[..index].iter().collect(),
            chars[index + 1..].iter().collect(),
        ),
        None => (String::new(), signature.to_string()),
    };
    Goal {
        case: None,
        hyps: binder_hypotheses(&binders),
        target: collapse(&statement),
    }
}

fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `(a b : T) {c : U} [inst : C] [D]` as hypotheses.
fn binder_hypotheses(binders: &str) -> Vec<(String, String)> {
    let mut hyps = Vec::new();
    let mut depth = 0i32;
    let mut group = String::new();
    for c in binders.chars() {
        match c {
            '(' | '[' | '{' | '⦃' => {
                if depth == 0 {
                    group.clear();
                    group.push(c);
                } else {
                    group.push(c);
                }
                depth += 1;
            }
            ')' | ']' | '}' | '⦄' => {
                depth -= 1;
                if depth == 0 {
                    let inner = &group[group.chars().next().map_or(0, char::len_utf8)..];
                    let instance = group.starts_with('[');
                    match split_top_level(inner, ':') {
                        Some((names, kind)) => {
                            for name in names.split_whitespace() {
                                hyps.push((name.to_string(), collapse(kind)));
                            }
                        }
                        None if instance => hyps.push(("inst✝".to_string(), collapse(inner))),
                        None => {}
                    }
                } else {
                    group.push(c);
                }
            }
            _ if depth > 0 => group.push(c),
            _ => {}
        }
    }
    hyps
}

/// Split at the first `separator` outside brackets.
fn split_top_level(text: &str, separator: char) -> Option<(&str, &str)> {
    let mut depth = 0i32;
    for (index, c) in text.char_indices() {
        match c {
            '(' | '[' | '{' | '⦃' | '⟨' => depth += 1,
            ')' | ']' | '}' | '⦄' | '⟩' => depth -= 1,
            _ if c == separator && depth == 0 => {
                return Some((&text[..index], &text[index + c.len_utf8()..]))
            }
            _ => {}
        }
    }
    None
}

/// `HEAD => BODY`: the head, and the body as written, its lines' indentation
/// kept (a body that starts on the next line is a block of its own).
fn split_arrow(text: &str) -> (&str, &str) {
    match split_operator(text, "=>") {
        Some((head, _)) => {
            let at = text.find("=>").map_or(text.len(), |index| index + 2);
            let body = &text[at..];
            let body = match body.split_once('\n') {
                Some((first, rest)) if first.trim().is_empty() => rest,
                _ => body.trim_start(),
            };
            (head, body)
        }
        None => (text, ""),
    }
}

/// Split at the first top-level occurrence of `operator` (a string).
fn split_operator<'a>(text: &'a str, operator: &str) -> Option<(&'a str, &'a str)> {
    let mut depth = 0i32;
    for (index, c) in text.char_indices() {
        match c {
            '(' | '[' | '{' | '⦃' | '⟨' => depth += 1,
            ')' | ']' | '}' | '⦄' | '⟩' => depth -= 1,
            _ if depth == 0 && text[index..].starts_with(operator) => {
                return Some((text[..index].trim(), text[index + operator.len()..].trim()))
            }
            _ => {}
        }
    }
    None
}

/// Library functions `apply` knows the type of (argument → result).
const LIBRARY_FUNCTIONS: &[(&str, &str, &str)] = &[
    ("Int.natAbs", "Int", "Nat"),
    ("Int.toNat", "Int", "Nat"),
    ("Nat.succ", "Nat", "Nat"),
];

/// Names in the root namespace an `exact` may name without Lean reporting
/// an unknown identifier (any dotted name is assumed to exist).
const KNOWN_ROOT_NAMES: &[&str] = &[
    "rfl", "trivial", "id", "absurd", "le_rfl", "le_refl", "add_comm", "mul_comm", "add_zero",
    "zero_add", "mul_one", "one_mul", "sorry",
];

/// What a tactic did to a proof state.
pub struct Step {
    pub goals: Vec<Goal>,
    /// Goals closed by `sorry` (each opens a proof state of its own).
    pub sorries: Vec<Goal>,
    /// Errors Lean recovered from (the goal is closed by `sorry`).
    pub errors: Vec<String>,
}

/// Why a tactic failed outright (`{"message": "Lean error:\n..."}`).
pub struct Thrown(pub String);

/// Run the tactic text (directive lines already taken out) on `goals`.
/// `known` tells whether a bare identifier names a constant.
pub fn run(text: &str, goals: &[Goal], known: &dyn Fn(&str) -> bool) -> Result<Step, Thrown> {
    let mut step = Step {
        goals: goals.to_vec(),
        sorries: Vec::new(),
        errors: Vec::new(),
    };
    for tactic in split_steps(text) {
        run_one(&tactic, &mut step, known)?;
    }
    Ok(step)
}

/// Tactics of a block: a line at the block's least indentation starts one;
/// deeper lines and `|` alternatives continue it.
fn split_steps(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text
        .lines()
        .map(|line| match line.find("--") {
            Some(index) => &line[..index],
            None => line,
        })
        .filter(|line| !line.trim().is_empty())
        .collect();
    let base = lines
        .iter()
        .map(|line| line.len() - line.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut steps: Vec<String> = Vec::new();
    for line in lines {
        let indent = line.len() - line.trim_start().len();
        match steps.last_mut() {
            // Deeper lines, and `| alternative` lines, continue a tactic.
            Some(last) if indent > base || line.trim_start().starts_with('|') => {
                last.push('\n');
                last.push_str(line);
            }
            _ => steps.push(line.trim().to_string()),
        }
    }
    steps
}

fn run_one(tactic: &str, step: &mut Step, known: &dyn Fn(&str) -> bool) -> Result<(), Thrown> {
    let tactic = tactic.trim();
    let (head, rest) = match tactic.find(char::is_whitespace) {
        Some(index) => (&tactic[..index], tactic[index..].trim()),
        None => (tactic, ""),
    };
    if head == "skip" {
        return Ok(());
    }
    if head == "all_goals" || head == "any_goals" {
        let goals = std::mem::take(&mut step.goals);
        for goal in goals {
            let mut inner = Step {
                goals: vec![goal],
                sorries: Vec::new(),
                errors: Vec::new(),
            };
            run_one(rest, &mut inner, known)?;
            step.goals.extend(inner.goals);
            step.sorries.extend(inner.sorries);
            step.errors.extend(inner.errors);
        }
        return Ok(());
    }
    if head == "on_goal" || head == "pick_goal" {
        let (number, body) = split_arrow(rest);
        let index = number
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=step.goals.len()).contains(n))
            .ok_or_else(|| Thrown(format!("not enough goals: {}", step.goals.len())))?
            - 1;
        let goal = step.goals.remove(index);
        if head == "pick_goal" {
            step.goals.insert(0, goal);
            return Ok(());
        }
        let mut inner = Step {
            goals: vec![goal],
            sorries: Vec::new(),
            errors: Vec::new(),
        };
        for tactic in split_steps(body) {
            run_one(&tactic, &mut inner, known)?;
        }
        step.sorries.extend(inner.sorries);
        step.errors.extend(inner.errors);
        step.goals.splice(index..index, inner.goals);
        return Ok(());
    }
    if head == "case" || head == "next" {
        let (tag, body) = split_arrow(rest);
        let tag = tag.split_whitespace().next().unwrap_or("");
        let position = if head == "next" || tag.is_empty() {
            Some(0).filter(|_| !step.goals.is_empty())
        } else {
            step.goals
                .iter()
                .position(|goal| goal.case.as_deref() == Some(tag))
        };
        let Some(position) = position else {
            return Err(Thrown(format!("Case tag '{tag}' not found.")));
        };
        let goal = step.goals.remove(position);
        let mut inner = Step {
            goals: vec![goal],
            sorries: Vec::new(),
            errors: Vec::new(),
        };
        for tactic in split_steps(body) {
            run_one(&tactic, &mut inner, known)?;
        }
        step.sorries.extend(inner.sorries);
        step.errors.extend(inner.errors);
        if let Some(left) = inner.goals.first() {
            step.errors
                .push(format!("unsolved goals\n{}", left.render(false)));
        }
        return Ok(());
    }
    let Some(main) = step.goals.first().cloned() else {
        return Err(Thrown("no goals to be proved".into()));
    };
    let replacement: Vec<Goal> = match head {
        "sorry" | "admit" => {
            step.sorries.push(main);
            Vec::new()
        }
        "intro" | "intros" => {
            let names: Vec<&str> = rest.split_whitespace().collect();
            let count = if names.is_empty() && head == "intro" {
                1
            } else {
                names.len().max(1)
            };
            let mut goal = main.clone();
            for index in 0..count {
                let name = names.get(index).copied().unwrap_or("a✝");
                match introduce(&goal, name) {
                    Some(next) => goal = next,
                    None if head == "intros" && names.is_empty() => break,
                    None => return Err(Thrown("no additional binders or let bindings".into())),
                }
            }
            vec![goal]
        }
        "have" => {
            let (declared, value) = split_operator(rest, ":=").unwrap_or((rest, ""));
            let (name, kind) = match split_top_level(declared, ':') {
                Some((name, kind)) => (name.trim(), collapse(kind)),
                None => ("this", collapse(declared)),
            };
            let name = if name.is_empty() { "this" } else { name };
            let mut goal = main.clone();
            let proof_goal = main.with_target(&kind);
            let proof_goal = Goal {
                case: None,
                ..proof_goal
            };
            let mut new_goals = Vec::new();
            if value.is_empty() {
                new_goals.push(proof_goal);
            } else if value
                .split(|c: char| !is_ident_char(c))
                .any(|word| word == "sorry" || word == "admit")
            {
                step.sorries.push(proof_goal);
            }
            goal.hyps.push((name.to_string(), kind));
            new_goals.push(goal);
            new_goals
        }
        "by_cases" => {
            let (name, proposition) = match split_top_level(rest, ':') {
                Some((name, proposition)) => (name.trim(), collapse(proposition)),
                None => ("h", collapse(rest)),
            };
            let mut positive = main.clone().tagged("pos");
            positive.hyps.push((name.to_string(), proposition.clone()));
            let mut negative = main.clone().tagged("neg");
            negative
                .hyps
                .push((name.to_string(), format!("¬{proposition}")));
            vec![positive, negative]
        }
        "constructor" => match split_conjunction(&main.target) {
            Some(goals) => goals
                .into_iter()
                .map(|(tag, target)| main.with_target(&target).tagged(tag))
                .collect(),
            None => Vec::new(),
        },
        "apply" => apply(&main, rest),
        "induction" => match induction(&main, rest) {
            Some((goals, alternatives)) => {
                let mut replacement = Vec::new();
                for (goal, alternative) in goals.into_iter().zip(alternatives) {
                    match alternative {
                        None => replacement.push(goal),
                        Some(body) => {
                            let mut inner = Step {
                                goals: vec![goal],
                                sorries: Vec::new(),
                                errors: Vec::new(),
                            };
                            for tactic in split_steps(&body) {
                                run_one(&tactic, &mut inner, known)?;
                            }
                            step.sorries.extend(inner.sorries);
                            step.errors.extend(inner.errors);
                            replacement.extend(inner.goals);
                        }
                    }
                }
                replacement
            }
            None => Vec::new(),
        },
        "exact" => {
            let bare = !rest.is_empty()
                && rest.chars().all(|c| is_ident_char(c) && c != '.')
                && !rest.chars().next().is_some_and(|c| c.is_ascii_digit());
            if bare
                && main.hypothesis(rest).is_none()
                && !known(rest)
                && !KNOWN_ROOT_NAMES.contains(&rest)
            {
                step.errors.push(format!("Unknown identifier `{rest}`"));
            }
            Vec::new()
        }
        _ => Vec::new(),
    };
    step.goals.splice(0..1, replacement);
    Ok(())
}

/// `induction n [with | zero => tac | succ m ih => tac]` on a natural
/// number `n` of the context: `case zero` with `n` replaced by `0`, `case
/// succ` with a new number and the hypothesis for it (`n✝`, `a✝` unless
/// the alternative names them) and `n` replaced by its successor. Each goal
/// comes with the tactic of its alternative, if any. `None` when `n` is
/// not a natural number of the context (the model then closes the goal).
#[allow(clippy::type_complexity)]
fn induction(main: &Goal, rest: &str) -> Option<(Vec<Goal>, Vec<Option<String>>)> {
    let (variable, alternatives) = match rest.split_once(" with") {
        Some((variable, alternatives)) => (variable.trim(), alternatives),
        None => (rest.trim(), ""),
    };
    let kind = main.hypothesis(variable)?;
    if kind != "Nat" && kind != "ℕ" {
        return None;
    }
    let mut arms: Vec<(String, Vec<String>, String)> = Vec::new();
    for arm in alternatives.split('|').skip(1) {
        let (pattern, body) = split_operator(arm, "=>").unwrap_or((arm, ""));
        let mut words = pattern.split_whitespace().map(str::to_string);
        let tag = words.next().unwrap_or_default();
        arms.push((tag, words.collect(), body.to_string()));
    }
    let arm = |tag: &str| arms.iter().find(|(name, _, _)| name == tag);
    let mut base = main.clone();
    base.hyps.retain(|(name, _)| name != variable);
    let zero = Goal {
        case: Some("zero".into()),
        target: substitute(&main.target, variable, "0"),
        ..base.clone()
    };
    let succ_arm = arm("succ");
    let names = succ_arm
        .map(|(_, names, _)| names.clone())
        .unwrap_or_default();
    let number = names.first().cloned().unwrap_or_else(|| "n✝".into());
    let hypothesis = names.get(1).cloned().unwrap_or_else(|| "a✝".into());
    let mut succ = Goal {
        case: Some("succ".into()),
        target: substitute(&main.target, variable, &format!("{number} + 1")),
        ..base
    };
    succ.hyps.push((number.clone(), kind.to_string()));
    succ.hyps
        .push((hypothesis, substitute(&main.target, variable, &number)));
    let alternatives = vec![
        arm("zero").map(|(_, _, body)| body.clone()),
        succ_arm.map(|(_, _, body)| body.clone()),
    ];
    Some((vec![zero, succ], alternatives))
}

/// `text` with the word `variable` replaced by `term`, parenthesised where
/// Lean would print parentheses (a sum after or inside a tighter operator).
fn substitute(text: &str, variable: &str, term: &str) -> String {
    let pieces = words(text);
    let loose = [
        "", "=", "≠", "<", ">", "≤", "≥", "(", ")", ",", "∧", "∨", "→", "↔", "¬",
    ];
    let mut out = String::new();
    for (index, (piece, is_word)) in pieces.iter().enumerate() {
        if !(*is_word && *piece == variable) {
            out.push_str(piece);
            continue;
        }
        let before = index.checked_sub(1).map_or("", |at| pieces[at].0.trim());
        let after = pieces.get(index + 1).map_or("", |next| next.0.trim());
        let compound = term.contains(' ');
        let bare = !compound
            || (loose.contains(&before)
                && (loose.contains(&after) || after == "+" || after == "-"));
        if bare {
            out.push_str(term);
        } else {
            out.push_str(&format!("({term})"));
        }
    }
    out
}

/// `intro name` on a goal: the premise of an implication or the variable of
/// a `∀`, or the proposition of a negation.
fn introduce(goal: &Goal, name: &str) -> Option<Goal> {
    let target = goal.target.trim();
    let mut next = goal.clone();
    if let Some(body) = target.strip_prefix('∀') {
        let (binder, rest) = split_top_level(body, ',')?;
        let (variables, kind) = match split_top_level(binder, ':') {
            Some((variables, kind)) => (variables.trim(), collapse(kind)),
            None => (binder.trim(), "?".to_string()),
        };
        let variables = variables.trim_matches(|c| c == '(' || c == ')');
        let mut names = variables.split_whitespace();
        let first = names.next()?;
        let remaining: Vec<&str> = names.collect();
        let rest = rename(rest.trim(), first, name);
        next.hyps.push((name.to_string(), kind.clone()));
        next.target = if remaining.is_empty() {
            rest
        } else {
            format!("∀ ({} : {kind}), {rest}", remaining.join(" "))
        };
        return Some(next);
    }
    if let Some(body) = target.strip_prefix('¬') {
        next.hyps.push((name.to_string(), body.trim().to_string()));
        next.target = "False".to_string();
        return Some(next);
    }
    let (premise, conclusion) = split_operator(target, "→")?;
    next.hyps.push((name.to_string(), premise.to_string()));
    next.target = conclusion.to_string();
    Some(next)
}

/// Replace the word `from` by `to` in `text`.
fn rename(text: &str, from: &str, to: &str) -> String {
    words(text)
        .into_iter()
        .map(|(word, is_word)| if is_word && word == from { to } else { word })
        .collect()
}

/// The two sides of `A ∧ B` (`left`, `right`) or `A ↔ B` (`mp`, `mpr`).
fn split_conjunction(target: &str) -> Option<Vec<(&'static str, String)>> {
    if let Some((left, right)) = split_operator(target, "∧") {
        return Some(vec![
            ("left", left.to_string()),
            ("right", right.to_string()),
        ]);
    }
    if let Some((left, right)) = split_operator(target, "↔") {
        return Some(vec![
            ("mp", format!("{left} → {right}")),
            ("mpr", format!("{right} → {left}")),
        ]);
    }
    None
}

/// `apply f`: the premises of `f` whose conclusion is the target become
/// goals; what the model cannot read closes the goal.
fn apply(main: &Goal, function: &str) -> Vec<Goal> {
    let function = function.trim();
    if function == "And.intro" || function == "Iff.intro" {
        return match split_conjunction(&main.target) {
            Some(goals) => goals
                .into_iter()
                .map(|(tag, target)| main.with_target(&target).tagged(tag))
                .collect(),
            None => Vec::new(),
        };
    }
    let kind = match main.hypothesis(function) {
        Some(kind) => kind.to_string(),
        None => match LIBRARY_FUNCTIONS
            .iter()
            .find(|(name, _, _)| *name == function)
        {
            Some((_, argument, result)) => format!("{argument} → {result}"),
            None => return Vec::new(),
        },
    };
    let mut premises = Vec::new();
    let mut rest = kind.as_str();
    while let Some((premise, conclusion)) = split_operator(rest, "→") {
        premises.push(premise.to_string());
        rest = conclusion;
    }
    if collapse(rest) != collapse(&main.target) {
        return Vec::new();
    }
    premises
        .iter()
        .map(|premise| main.with_target(premise))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goals_print_as_lean_prints_them() {
        let goal = goal_of_signature("(p q r : Prop) (h1 : p ∧ q) {n : Nat} [Add Nat] : p ∧ r");
        assert_eq!(
            goal.render(false),
            "p q r : Prop\nh1 : p ∧ q\nn : Nat\ninst✝ : Add Nat\n⊢ p ∧ r"
        );
        assert_eq!(goal.render(true).lines().nth(2), Some("n : ℕ"));
    }

    #[test]
    fn redundant_parentheses_are_not_printed() {
        for (written, printed) in [
            ("(x < 0) ∨ (2 * x > 2)", "x < 0 ∨ 2 * x > 2"),
            ("(a + b) * c = d", "(a + b) * c = d"),
            ("(a + b) + c = a + (b + c)", "a + b + c = a + (b + c)"),
            ("a ∧ (b ∧ c)", "a ∧ b ∧ c"),
            ("(a ∧ b) ∧ c", "(a ∧ b) ∧ c"),
            ("f (x + 1) = (2 : ℝ)", "f (x + 1) = (2 : ℝ)"),
            ("¬(a = b)", "¬a = b"),
            ("¬(a ∧ b)", "¬(a ∧ b)"),
            ("-(a * b) = (-a) * b", "-(a * b) = -a * b"),
            ("(∀ x, p x) → q", "(∀ x, p x) → q"),
            ("((x))", "x"),
            ("(a, b) = c", "(a, b) = c"),
        ] {
            assert_eq!(drop_redundant_parentheses(written), printed, "{written}");
        }
    }

    #[test]
    fn a_successor_is_parenthesised_where_lean_prints_parentheses() {
        assert_eq!(substitute("x = x", "x", "n + 1"), "n + 1 = n + 1");
        assert_eq!(substitute("2 * x = 4", "x", "n + 1"), "2 * (n + 1) = 4");
        assert_eq!(substitute("x + a = b", "x", "n + 1"), "n + 1 + a = b");
        assert_eq!(substitute("a + x = b", "x", "n + 1"), "a + (n + 1) = b");
        assert_eq!(substitute("f x = xs", "x", "0"), "f 0 = xs");
    }

    #[test]
    fn tactics_shape_the_goals() {
        let known = |_: &str| false;
        let goal = goal_of_signature("(p q : Prop) : p ∧ q → q ∧ p");
        let step = run("intro h\napply And.intro", &[goal], &known)
            .ok()
            .unwrap();
        let printed: Vec<String> = step.goals.iter().map(|g| g.render(false)).collect();
        assert_eq!(
            printed,
            [
                "case left\np q : Prop\nh : p ∧ q\n⊢ q",
                "case right\np q : Prop\nh : p ∧ q\n⊢ p"
            ]
        );
        let step = run("exact nowhere", &step.goals, &known).ok().unwrap();
        assert_eq!(step.errors, ["Unknown identifier `nowhere`"]);
        assert_eq!(step.goals.len(), 1);
    }
}

//! What lean-sim offers for a declaration's type "as a term": a key that
//! stands in for the elaborated expression the farm's audit writes out in
//! real Lean (constants by full name, instances chosen, binder names left
//! out). Two statements get the same key when real Lean would elaborate them
//! to the same term in the cases lean-sim models:
//! - bound variables are named by position, so renamed binders match;
//! - an identifier is resolved through the namespaces `open`ed before the
//!   declaration, against a small table of library constants
//!   (`LIBRARY_CONSTANTS`), so `open Real` + `cos π` is `Real.cos Real.pi`;
//! - an identifier that names a constant the snippet declared is marked as
//!   such (`@name`), so a snippet's own definitions never match a library's;
//! - an operator whose class has an instance the snippet declared is marked
//!   with that instance (`+[@instAddNat]`), as Lean would pick it.
//!
//! It never elaborates: anything else is compared token by token.

/// Library constants lean-sim pretends the imports bring, for `open`.
pub const LIBRARY_CONSTANTS: &[&str] = &[
    "Nat.succ",
    "Nat.pred",
    "Nat.add",
    "Nat.factorial",
    "Nat.gcd",
    "Nat.Prime",
    "Int.natAbs",
    "Int.toNat",
    "Real.pi",
    "Real.cos",
    "Real.sin",
    "Real.tan",
    "Real.exp",
    "Real.log",
    "Real.sqrt",
    "Finset.range",
    "Finset.sum",
];

/// The operators whose meaning an instance of a class decides.
const OPERATOR_CLASSES: &[(&str, &[&str])] = &[
    ("+", &["Add", "HAdd"]),
    ("-", &["Sub", "HSub", "Neg"]),
    ("*", &["Mul", "HMul"]),
    ("/", &["Div", "HDiv"]),
    ("%", &["Mod", "HMod"]),
    ("^", &["Pow", "HPow"]),
    ("≤", &["LE"]),
    ("<", &["LT"]),
    ("≥", &["LE"]),
    (">", &["LT"]),
];

/// A constant visible where the declaration is elaborated.
pub struct Visible<'a> {
    pub name: &'a str,
    pub kind: &'a str,
    pub signature: &'a str,
}

fn is_identifier_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '\'' | '!' | '?' | '₀'..='₉')
}

/// Split a signature into identifiers, numbers and single symbols.
fn lex(signature: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut chars = signature.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if is_identifier_char(c) {
            let mut token = String::new();
            while let Some(&c) = chars.peek() {
                if !is_identifier_char(c) {
                    break;
                }
                token.push(c);
                chars.next();
            }
            tokens.push(token);
        } else {
            tokens.push(c.to_string());
            chars.next();
        }
    }
    tokens
}

/// The class an instance declares, from its signature (`: Add Nat` → `Add`).
fn instance_class(signature: &str) -> Option<String> {
    let tokens = lex(signature);
    let colon = tokens.iter().rposition(|token| token == ":")?;
    tokens.get(colon + 1).cloned()
}

/// The name Lean gives an anonymous instance: `inst` and the identifiers of
/// its type (`instance : Add Nat` → `instAddNat`).
pub fn instance_name(signature: &str) -> String {
    let tokens = lex(signature);
    let start = tokens
        .iter()
        .rposition(|token| token == ":")
        .map_or(0, |i| i + 1);
    let mut name = String::from("inst");
    for token in &tokens[start..] {
        if token.chars().next().is_some_and(char::is_alphabetic) {
            name.extend(token.split('.').flat_map(|part| part.chars()));
        }
    }
    name
}

/// The term key of a declaration's signature.
pub fn term_key(signature: &str, visible: &[Visible<'_>], opens: &[String]) -> String {
    let tokens = lex(signature);
    // Bound names: those before a `:` inside a binder bracket, and those
    // after a `∀ ∃ fun λ` up to `,` `:` or `=>`.
    let mut bound: Vec<String> = Vec::new();
    let mut index = 0;
    while index < tokens.len() {
        match tokens[index].as_str() {
            "(" | "{" | "⦃" | "[" => {
                let close = ["(", "{", "⦃", "["]
                    .iter()
                    .position(|open| *open == tokens[index])
                    .map(|i| [")", "}", "⦄", "]"][i])
                    .unwrap_or(")");
                let mut names = Vec::new();
                let mut cursor = index + 1;
                while cursor < tokens.len() && is_name(&tokens[cursor]) {
                    names.push(tokens[cursor].clone());
                    cursor += 1;
                }
                if tokens.get(cursor).is_some_and(|t| t == ":") && tokens[cursor] != close {
                    bound.extend(names);
                }
            }
            "∀" | "∃" | "fun" | "λ" | "let" => {
                let mut cursor = index + 1;
                while cursor < tokens.len() {
                    let token = &tokens[cursor];
                    if is_name(token) {
                        bound.push(token.clone());
                    } else if token != "(" && token != ")" {
                        break;
                    }
                    cursor += 1;
                }
            }
            _ => {}
        }
        index += 1;
    }
    let mut key = Vec::with_capacity(tokens.len());
    for token in &tokens {
        if let Some(position) = bound.iter().position(|name| name == token) {
            key.push(format!("#{position}"));
        } else if is_name(token) {
            key.push(resolve(token, visible, opens));
        } else if let Some(instance) = operator_instance(token, visible) {
            key.push(format!("{token}[@{instance}]"));
        } else {
            key.push(token.clone());
        }
    }
    key.join(" ")
}

fn is_name(token: &str) -> bool {
    token
        .chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
        && !["fun", "λ", "let", "in", "if", "then", "else", "by"].contains(&token)
}

fn resolve(token: &str, visible: &[Visible<'_>], opens: &[String]) -> String {
    if visible.iter().any(|constant| constant.name == token) {
        return format!("@{token}");
    }
    for namespace in opens.iter().rev() {
        let candidate = format!("{namespace}.{token}");
        if visible.iter().any(|constant| constant.name == candidate) {
            return format!("@{candidate}");
        }
        if LIBRARY_CONSTANTS.contains(&candidate.as_str()) {
            return candidate;
        }
    }
    token.to_string()
}

fn operator_instance<'a>(operator: &str, visible: &[Visible<'a>]) -> Option<&'a str> {
    let (_, classes) = OPERATOR_CLASSES.iter().find(|(op, _)| *op == operator)?;
    visible
        .iter()
        .rev()
        .find(|constant| {
            constant.kind == "instance"
                && instance_class(constant.signature)
                    .is_some_and(|class| classes.contains(&class.as_str()))
        })
        .map(|constant| constant.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renamed_binders_have_one_key() {
        assert_eq!(
            term_key("(x : Nat) (h : x = 2) : x + 1 = 3", &[], &[]),
            term_key("(y : Nat) (hy : y = 2) : y + 1 = 3", &[], &[])
        );
        assert_eq!(
            term_key(": ∀ n : Nat, n + 0 = n", &[], &[]),
            term_key(": ∀ m : Nat, m + 0 = m", &[], &[])
        );
        assert_ne!(
            term_key("(x y : Nat) : x ≤ y", &[], &[]),
            term_key("(x y : Nat) : y ≤ x", &[], &[])
        );
    }

    #[test]
    fn opened_namespaces_resolve_library_names() {
        assert_eq!(
            term_key(": cos pi = -1", &[], &["Real".to_string()]),
            term_key(": Real.cos Real.pi = -1", &[], &[])
        );
        assert_ne!(
            term_key(": cos pi = -1", &[], &[]),
            term_key(": Real.cos Real.pi = -1", &[], &[])
        );
    }

    #[test]
    fn the_snippets_own_constants_and_instances_change_the_key() {
        let instance = Visible {
            name: "instAddNat",
            kind: "instance",
            signature: ": Add Nat",
        };
        assert_ne!(
            term_key(": 1 + 1 = 3", &[instance], &[]),
            term_key(": 1 + 1 = 3", &[], &[])
        );
        let shadow = Visible {
            name: "Nat",
            kind: "def",
            signature: ": Type := Bool",
        };
        assert_ne!(
            term_key("(n : Nat) : n = n", &[shadow], &[]),
            term_key("(n : Nat) : n = n", &[], &[])
        );
        assert_eq!(instance_name(": Add Nat"), "instAddNat");
    }
}

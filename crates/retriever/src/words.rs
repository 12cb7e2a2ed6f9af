//! The words a declaration is found by, and the words of a query: the same
//! function reads both, so `Nat.add_comm`, `add comm`, `AddComm` and
//! `a + b = b + a` meet on the words `add` and `comm`.
//!
//! A name is split at `.`, `_` and camel-case boundaries (`HasDerivAt` gives
//! `has deriv at` and `hasderivat`); a symbol of Lean's notation becomes the
//! word Mathlib's naming convention uses for it (`≤` is `le`, `+` is `add`).
//! Every word is lowercase ASCII letters and digits or other alphanumeric
//! characters: never a quote or an operator of FTS5's query syntax.

/// The most words a query is searched by; the rest are ignored.
pub const MAX_QUERY_WORDS: usize = 32;

/// The word Mathlib's names use for a symbol of Lean's notation.
fn symbol_word(symbol: char) -> Option<&'static str> {
    let word = match symbol {
        '≤' => "le",
        '<' => "lt",
        '≥' => "ge",
        '>' => "gt",
        '≠' => "ne",
        '=' => "eq",
        '+' => "add",
        '*' | '•' => "mul",
        '-' => "sub",
        '/' => "div",
        '%' => "mod",
        '^' => "pow",
        '∣' => "dvd",
        '∑' => "sum",
        '∏' => "prod",
        '¬' => "not",
        '∧' => "and",
        '∨' => "or",
        '↔' => "iff",
        '∈' => "mem",
        '∉' => "mem",
        '⊆' => "subset",
        '∪' => "union",
        '∩' => "inter",
        '√' => "sqrt",
        '∘' => "comp",
        '∅' => "empty",
        'ℕ' => "nat",
        'ℤ' => "int",
        'ℝ' => "real",
        'ℚ' => "rat",
        'ℂ' => "complex",
        '⁻' => "inv",
        _ => return None,
    };
    Some(word)
}

/// Appends the words of one identifier-like run (`add_comm`, `HasDerivAt`,
/// `Nat.succ_le_iff`) to `words`: each part at `.`/`_`, each camel-case
/// piece of a part, and the part itself when it has several pieces.
fn push_identifier_words(run: &str, words: &mut Vec<String>) {
    for part in run.split(['.', '_', '\'']).filter(|part| !part.is_empty()) {
        let pieces = camel_case_pieces(part);
        if pieces.len() > 1 {
            words.push(part.to_lowercase());
        }
        for piece in pieces {
            words.push(piece.to_lowercase());
        }
    }
}

/// `HasDerivAt` → `Has`, `Deriv`, `At`; `toNNReal` → `to`, `NNReal`;
/// `sq2` → `sq2`. A run of capitals stays together unless a lowercase
/// letter follows its last one.
fn camel_case_pieces(part: &str) -> Vec<&str> {
    let characters: Vec<(usize, char)> = part.char_indices().collect();
    let mut pieces = Vec::new();
    let mut start = 0;
    for index in 1..characters.len() {
        let (at, current) = characters[index];
        let previous = characters[index - 1].1;
        let next_is_lower = characters
            .get(index + 1)
            .is_some_and(|(_, next)| next.is_lowercase());
        let boundary = (previous.is_lowercase() && current.is_uppercase())
            || (previous.is_uppercase() && current.is_uppercase() && next_is_lower);
        if boundary {
            pieces.push(&part[start..at]);
            start = at;
        }
    }
    pieces.push(&part[start..]);
    pieces
}

/// Every word of `text`, in order, with repeats: identifier-like runs split
/// as names are, symbols as their words; everything else separates words.
pub fn words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut run = String::new();
    for character in text.chars() {
        let continues_run = character.is_alphanumeric()
            || ((character == '_' || character == '.' || character == '\'') && !run.is_empty());
        if continues_run && symbol_word(character).is_none() {
            run.push(character);
            continue;
        }
        if !run.is_empty() {
            push_identifier_words(&run, &mut words);
            run.clear();
        }
        if let Some(word) = symbol_word(character) {
            words.push(word.to_string());
        }
    }
    if !run.is_empty() {
        push_identifier_words(&run, &mut words);
    }
    words
}

/// The words of a name joined by spaces: what the index stores for FTS5's
/// tokenizer to read.
pub fn indexed_words(text: &str) -> String {
    words(text).join(" ")
}

/// Whether a word can tell declarations apart: a one-character word is a
/// bound variable (`a`, `x`, `n`) or an article, found in nearly every
/// signature and docstring.
fn is_telling(word: &str) -> bool {
    word.chars().nth(1).is_some()
}

/// The telling words of a signature or docstring joined by spaces.
pub fn indexed_telling_words(text: &str) -> String {
    words(text)
        .into_iter()
        .filter(|word| is_telling(word))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The distinct telling words of a query, in order of first appearance, at
/// most [`MAX_QUERY_WORDS`].
pub fn query_words(query: &str) -> Vec<String> {
    let mut distinct: Vec<String> = Vec::new();
    for word in words(query).into_iter().filter(|word| is_telling(word)) {
        if distinct.len() == MAX_QUERY_WORDS {
            break;
        }
        if !distinct.contains(&word) {
            distinct.push(word);
        }
    }
    distinct
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dotted_snake_case_name_gives_each_part() {
        assert_eq!(words("Nat.add_comm"), ["nat", "add", "comm"]);
    }

    #[test]
    fn a_camel_case_name_gives_its_pieces_and_itself() {
        assert_eq!(
            words("HasDerivAt.add"),
            ["hasderivat", "has", "deriv", "at", "add"]
        );
        assert_eq!(words("toNNReal"), ["tonnreal", "to", "nn", "real"]);
        assert_eq!(words("sq_nonneg'"), ["sq", "nonneg"]);
    }

    #[test]
    fn symbols_become_the_words_of_mathlib_names() {
        assert_eq!(
            words("∀ a b : ℕ, a + b ≤ b * a"),
            ["a", "b", "nat", "a", "add", "b", "le", "b", "mul", "a"]
        );
    }

    #[test]
    fn query_words_are_distinct_capped_and_free_of_query_syntax() {
        let words = query_words("\"add\" OR comm* NEAR(x y) col:add ^ - {a} add");
        assert_eq!(
            words,
            ["add", "or", "comm", "mul", "near", "col", "pow", "sub"]
        );
        for word in &words {
            assert!(word.chars().all(char::is_alphanumeric), "{word}");
        }
        let many: String = (0..100).map(|index| format!("w{index} ")).collect();
        assert_eq!(query_words(&many).len(), MAX_QUERY_WORDS);
    }
}

//! Character classes of Lean 4 identifiers.
//!
//! Follows `isLetterLike`, `isSubScriptAlnum`, `isIdFirst`, `isIdRest`,
//! `isIdBeginEscape` and `isIdEndEscape` of `src/Init/Meta/Defs.lean` in
//! leanprover/lean4 (the version with the Latin-1 and Latin Extended-A ranges
//! and the subscript `ⱼ`). `Char.isAlpha` and `Char.isAlphanum` are ASCII-only
//! in Lean, so every other letter comes from these ranges. This module must
//! never widen them to Unicode's own notion of a letter: a character Lean does
//! not accept in a name must not be lexed as part of one.

/// `Lean.isLetterLike`: Greek except `λ`, `Π`, `Σ`; Coptic; polytonic Greek;
/// the letter-like block; mathematical alphanumerics; Latin-1 letters but `×`
/// and `÷`; Latin Extended-A.
pub fn is_letter_like(character: char) -> bool {
    let value = character as u32;
    (0x3b1..=0x3c9).contains(&value) && value != 0x3bb
        || (0x391..=0x3a9).contains(&value) && value != 0x3a0 && value != 0x3a3
        || (0x3ca..=0x3fb).contains(&value)
        || (0x1f00..=0x1ffe).contains(&value)
        || (0x2100..=0x214f).contains(&value)
        || (0x1d49c..=0x1d59f).contains(&value)
        || (0xc0..=0xff).contains(&value) && value != 0xd7 && value != 0xf7
        || (0x100..=0x17f).contains(&value)
}

/// `Lean.isSubScriptAlnum`: numeric subscripts, letter subscripts and `ⱼ`.
pub fn is_subscript_alphanumeric(character: char) -> bool {
    let value = character as u32;
    (0x2080..=0x2089).contains(&value)
        || (0x2090..=0x209c).contains(&value)
        || (0x1d62..=0x1d6a).contains(&value)
        || value == 0x2c7c
}

/// `Lean.isIdFirst`: may start an identifier part.
pub fn is_identifier_first(character: char) -> bool {
    character.is_ascii_alphabetic() || character == '_' || is_letter_like(character)
}

/// `Lean.isIdRest`: may continue an identifier part.
pub fn is_identifier_rest(character: char) -> bool {
    character.is_ascii_alphanumeric()
        || matches!(character, '_' | '\'' | '!' | '?')
        || is_letter_like(character)
        || is_subscript_alphanumeric(character)
}

/// `Lean.isIdBeginEscape`.
pub const IDENTIFIER_ESCAPE_BEGIN: char = '«';
/// `Lean.isIdEndEscape`.
pub const IDENTIFIER_ESCAPE_END: char = '»';

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greek_letters_but_lambda_pi_sigma_start_identifiers() {
        assert!(is_identifier_first('α'));
        assert!(is_identifier_first('β'));
        assert!(is_identifier_first('Δ'));
        assert!(!is_identifier_first('λ'));
        assert!(!is_identifier_first('Π'));
        assert!(!is_identifier_first('Σ'));
    }

    #[test]
    fn letter_like_symbols_and_latin_letters_are_letters() {
        assert!(is_identifier_first('ℕ'));
        assert!(is_identifier_first('ℝ'));
        assert!(is_identifier_first('𝒜'));
        assert!(is_identifier_first('é'));
        assert!(is_identifier_first('ł'));
        assert!(!is_identifier_first('×'));
        assert!(!is_identifier_first('÷'));
    }

    #[test]
    fn subscripts_and_suffixes_continue_but_do_not_start() {
        for character in ['₁', 'ₐ', 'ᵢ', 'ⱼ', '\'', '!', '?', '0'] {
            assert!(is_identifier_rest(character), "{character}");
            assert!(!is_identifier_first(character), "{character}");
        }
    }

    #[test]
    fn symbols_are_not_identifier_characters() {
        for character in ['✝', '∀', '→', '⟨', '·', '.', '«', '#', '@', ' '] {
            assert!(!is_identifier_rest(character), "{character}");
            assert!(!is_identifier_first(character), "{character}");
        }
    }
}

//! What lean-sim "elaborates": a light reading of Lean source into imports,
//! declarations, commands it understands, and `-- sim:` directives. It never
//! checks mathematics.

/// A position: 1-based line, 0-based column in code points.
pub type LineCol = (u32, u32);

#[derive(Clone, Debug, PartialEq)]
pub struct Declaration {
    pub kind: String,
    /// `None` for `example`s (and anonymous instances).
    pub name: Option<String>,
    /// Where the name (or the keyword, when there is no name) stands.
    pub name_pos: LineCol,
    pub name_end: LineCol,
    /// The declaration's text with comments removed, for token scans.
    pub code: String,
    /// The signature: text after the name up to `:=`, whitespace collapsed.
    pub signature: String,
    /// `sorry`/`admit` tokens: start and end.
    pub sorries: Vec<(LineCol, LineCol)>,
    /// Declared `private`: Lean names it `_private.<module>.0.<name>`.
    pub private: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Import {
        module: String,
        pos: LineCol,
    },
    Declaration(Declaration),
    PrintAxioms {
        name: String,
        pos: LineCol,
        end: LineCol,
    },
    /// A use of a `#leanfarm_audit_<hex>` command.
    Audit {
        command: String,
        pos: LineCol,
        end: LineCol,
    },
    /// A definition of the farm's audit command.
    AuditDefinition {
        command: String,
    },
    /// An `elab`/`macro`/`macro_rules`/`syntax` that redefines `#print axioms`.
    SpoofPrintAxioms,
    Directive {
        directive: String,
        line: u32,
    },
    /// `open A B` (not `open A in`): namespaces names resolve through.
    Open(Vec<String>),
    /// `namespace A.B`: later names are prefixed with it until its `end`.
    Namespace(String),
    /// `section`.
    Section,
    /// `end` (of a namespace or a section).
    End,
}

const DECLARATION_KEYWORDS: &[&str] = &[
    "theorem",
    "lemma",
    "def",
    "abbrev",
    "instance",
    "example",
    "axiom",
    "opaque",
    "structure",
    "inductive",
    "class",
];
/// Lean's declaration modifiers, as the farm's lexer knows them.
const MODIFIERS: &[&str] = lean_syntax::MODIFIERS;

fn strip_comment(line: &str) -> &str {
    match line.find("--") {
        Some(index) => &line[..index],
        None => line,
    }
}

fn column_of(line: &str, byte_index: usize) -> u32 {
    line[..byte_index].chars().count() as u32
}

/// Split a command into the items lean-sim acts on.
pub fn analyse(text: &str) -> Vec<Item> {
    let mut items = Vec::new();
    // The imports as Lean's header parser reads them: what follows the last
    // module name (even on its line, after a comment) is a command.
    let after_header;
    // The line the body starts on when it shares it with the header: a
    // command there starts at a column of its own.
    let mut shared_line = 0;
    let text = match lean_syntax::header(text) {
        Ok(header) if !header.imports.is_empty() => {
            for import in &header.imports {
                items.push(Item::Import {
                    module: import.module.clone(),
                    pos: (import.start.line, import.start.column),
                });
            }
            // Blank the header and the comments after it, up to the body's
            // first token (keeping lines and columns).
            let first_token = lean_syntax::Lexer::starting_at(text, header.body_start)
                .and_then(|mut lexer| lexer.next_token().ok().flatten());
            let (body_start, body_position) = match first_token {
                Some(token) => (token.span.start, token.start),
                None => (header.body_start, header.body_start_position),
            };
            let blank: String = text[..body_start]
                .chars()
                .map(|c| if c == '\n' { '\n' } else { ' ' })
                .collect();
            if body_position.column > 0 {
                shared_line = body_position.line;
            }
            after_header = blank + &text[body_start..];
            after_header.as_str()
        }
        _ => text,
    };
    let lines: Vec<&str> = text.split('\n').collect();
    let mut current: Option<(Declaration, Vec<String>)> = None;
    let mut seen_non_import = false;
    let flush = |current: &mut Option<(Declaration, Vec<String>)>, items: &mut Vec<Item>| {
        if let Some((mut declaration, code_lines)) = current.take() {
            declaration.code = code_lines.join("\n");
            items.push(Item::Declaration(declaration));
        }
    };
    for (index, raw_line) in lines.iter().enumerate() {
        let line_number = index as u32 + 1;
        let trimmed = raw_line.trim();
        if let Some(directive) = trimmed.strip_prefix("-- sim:") {
            items.push(Item::Directive {
                directive: directive.trim().to_string(),
                line: line_number,
            });
            continue;
        }
        if trimmed.contains("elab \"#leanfarm_audit_") {
            if let Some(start) = trimmed.find("#leanfarm_audit_") {
                let command: String = trimmed[start..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '#')
                    .collect();
                items.push(Item::AuditDefinition { command });
            }
            flush(&mut current, &mut items);
            seen_non_import = true;
            continue;
        }
        let code = strip_comment(raw_line);
        let code_trimmed = code.trim();
        if code_trimmed.is_empty() {
            if let Some((_, code_lines)) = current.as_mut() {
                code_lines.push(String::new());
            }
            continue;
        }
        let indent = raw_line.len() - raw_line.trim_start().len();
        let first_word = code_trimmed.split_whitespace().next().unwrap_or("");
        if first_word == "import" && !seen_non_import {
            for module in code_trimmed["import".len()..].split_whitespace() {
                items.push(Item::Import {
                    module: module.to_string(),
                    pos: (line_number, 0),
                });
            }
            continue;
        }
        seen_non_import = true;
        if ["elab", "macro", "macro_rules", "syntax"].contains(&first_word)
            && code_trimmed.contains("#print")
            && code_trimmed.contains("axioms")
        {
            flush(&mut current, &mut items);
            items.push(Item::SpoofPrintAxioms);
            continue;
        }
        if indent == 0 || line_number == shared_line {
            if let Some(rest) = code_trimmed.strip_prefix("#print axioms") {
                flush(&mut current, &mut items);
                let name = rest.trim().to_string();
                items.push(Item::PrintAxioms {
                    name,
                    pos: (line_number, 0),
                    end: (line_number, 6),
                });
                continue;
            }
            if first_word.starts_with("#leanfarm_audit_") {
                flush(&mut current, &mut items);
                let end = (line_number, first_word.chars().count() as u32);
                items.push(Item::Audit {
                    command: first_word.to_string(),
                    pos: (line_number, 0),
                    end,
                });
                continue;
            }
            let scope_item = match first_word {
                "open" if !code_trimmed.ends_with(" in") => Some(Item::Open(
                    code_trimmed["open".len()..]
                        .split_whitespace()
                        .take_while(|word| !["hiding", "renaming", "in"].contains(word))
                        .map(str::to_string)
                        .collect(),
                )),
                "namespace" => code_trimmed
                    .split_whitespace()
                    .nth(1)
                    .map(|name| Item::Namespace(name.to_string())),
                "section" => Some(Item::Section),
                "end" => Some(Item::End),
                _ => None,
            };
            if let Some(item) = scope_item {
                flush(&mut current, &mut items);
                items.push(item);
                continue;
            }
            if let Some(declaration) = parse_declaration_start(raw_line, line_number) {
                flush(&mut current, &mut items);
                current = Some((declaration, vec![code.to_string()]));
                continue;
            }
        }
        if let Some((_, code_lines)) = current.as_mut() {
            code_lines.push(code.to_string());
        }
    }
    flush(&mut current, &mut items);
    for item in items.iter_mut() {
        if let Item::Declaration(declaration) = item {
            finish_declaration(declaration);
        }
    }
    items
}

/// Recognise `[@[attr]] [modifiers] keyword [name]` at the start of a line.
fn parse_declaration_start(line: &str, line_number: u32) -> Option<Declaration> {
    let mut rest = line.trim_start();
    let mut offset = line.len() - rest.len();
    let mut private = false;
    let skip = |rest: &mut &str, offset: &mut usize, by: usize| {
        *offset += by;
        *rest = &rest[by..];
        let trimmed = rest.trim_start();
        *offset += rest.len() - trimmed.len();
        *rest = trimmed;
    };
    loop {
        if rest.starts_with("@[") {
            let close = rest.find(']')?;
            skip(&mut rest, &mut offset, close + 1);
            continue;
        }
        let word: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if MODIFIERS.contains(&word.as_str()) {
            private |= word == "private";
            skip(&mut rest, &mut offset, word.len());
            continue;
        }
        if !DECLARATION_KEYWORDS.contains(&word.as_str()) {
            return None;
        }
        let keyword_column = column_of(line, offset);
        let keyword_end = keyword_column + word.chars().count() as u32;
        skip(&mut rest, &mut offset, word.len());
        let name: String = rest
            .chars()
            .take_while(|c| {
                c.is_alphanumeric()
                    || matches!(c, '_' | '.' | '\'' | '!' | '?')
                    || (*c as u32) > 0x7f && !c.is_whitespace()
            })
            .collect();
        let has_name = word != "example" && !name.is_empty();
        let (name_pos, name_end, after_name) = if has_name {
            let column = column_of(line, offset);
            (
                (line_number, column),
                (line_number, column + name.chars().count() as u32),
                &rest[name.len()..],
            )
        } else {
            (
                (line_number, keyword_column),
                (line_number, keyword_end),
                rest,
            )
        };
        return Some(Declaration {
            kind: word,
            name: has_name.then_some(name),
            name_pos,
            name_end,
            code: String::new(),
            signature: after_name.to_string(),
            sorries: Vec::new(),
            private,
        });
    }
}

fn finish_declaration(declaration: &mut Declaration) {
    // The signature runs from after the name to `:=` (or the end, for axioms).
    let first_line_rest = std::mem::take(&mut declaration.signature);
    let mut after_first: Vec<&str> = declaration.code.split('\n').skip(1).collect();
    let mut full = first_line_rest;
    for line in after_first.drain(..) {
        full.push('\n');
        full.push_str(line);
    }
    let signature = match top_level_colon_equals(&full) {
        Some(index) => &full[..index],
        None => full.split(" where").next().unwrap_or(&full),
    };
    declaration.signature = signature.split_whitespace().collect::<Vec<_>>().join(" ");
    let (start_line, _) = declaration.name_pos;
    for (offset, line) in declaration.code.split('\n').enumerate() {
        for token in ["sorry", "admit"] {
            let mut search_from = 0;
            while let Some(found) = line[search_from..].find(token) {
                let start = search_from + found;
                let end = start + token.len();
                let before_ok = !line[..start]
                    .chars()
                    .last()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_');
                let after_ok = !line[end..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_');
                if before_ok && after_ok {
                    let line_number = start_line + offset as u32;
                    let column = column_of(line, start);
                    declaration.sorries.push((
                        (line_number, column),
                        (line_number, column + token.len() as u32),
                    ));
                }
                search_from = end;
            }
        }
    }
}

/// The first `:=` outside brackets: where a declaration's value starts (a
/// `let x := v` inside parentheses belongs to the type).
fn top_level_colon_equals(text: &str) -> Option<usize> {
    let mut depth = 0i32;
    let mut previous = ' ';
    for (index, c) in text.char_indices() {
        match c {
            '(' | '[' | '{' | '⦃' | '⟨' => depth += 1,
            ')' | ']' | '}' | '⦄' | '⟩' => depth -= 1,
            '=' if previous == ':' && depth == 0 => return Some(index - 1),
            _ => {}
        }
        previous = c;
    }
    None
}

/// Identifier-like tokens of some code.
pub fn tokens(code: &str) -> impl Iterator<Item = &str> {
    code.split(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '.' | '\'' | '!' | '?')))
        .filter(|token| !token.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_declarations_imports_and_directives() {
        let items = analyse("import Mathlib\n@[simp] private theorem foo (n : Nat) : n + 0 = n := by\n  sorry\n-- sim: cpu 5\nexample : True := trivial");
        assert_eq!(items.len(), 4);
        let declarations: Vec<&Declaration> = items
            .iter()
            .filter_map(|item| match item {
                Item::Declaration(declaration) => Some(declaration),
                _ => None,
            })
            .collect();
        let foo = declarations[0];
        assert_eq!(foo.name.as_deref(), Some("foo"));
        assert_eq!(foo.kind, "theorem");
        assert_eq!(foo.signature, "(n : Nat) : n + 0 = n");
        assert_eq!(foo.name_pos, (2, 24));
        assert_eq!(foo.sorries, vec![((3, 2), (3, 7))]);
        assert_eq!(
            crate::tactics::goal_of_signature(&foo.signature).render(false),
            "n : Nat\n⊢ n + 0 = n"
        );
        assert!(items.iter().any(
            |item| matches!(item, Item::Directive { directive, line: 4 } if directive == "cpu 5")
        ));
        let example = declarations[1];
        assert_eq!(example.name, None);
        assert_eq!(example.name_pos, (5, 0));
    }
}

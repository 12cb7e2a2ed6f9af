// A small Lean 4 tokenizer for display: comments (nested block comments),
// strings and characters, numbers, keywords, tactics, and everything else
// as plain text. It never evaluates anything; it only decides the class of
// each piece of text, which is then shown with textContent.

const KEYWORDS = new Set(
  ("theorem lemma def abbrev instance example axiom opaque structure inductive class " +
    "where with match fun λ let have show from by at in if then else do return " +
    "namespace section end open import variable universe set_option attribute private " +
    "protected noncomputable partial unsafe macro macro_rules syntax elab deriving " +
    "calc suffices obtain mutual termination_by decreasing_by Type Prop Sort").split(" "),
);

const TACTICS = new Set(
  ("intro intros exact apply refine rfl simp simp_all omega decide norm_num ring linarith " +
    "nlinarith positivity induction cases rcases rintro constructor use exists assumption " +
    "contradiction exfalso trivial rw rwa subst unfold dsimp specialize aesop tauto " +
    "native_decide sorry admit first repeat try all_goals any_goals focus next case " +
    "left right exists field_simp gcongr push_neg by_contra by_cases split ext congr " +
    "calc conv change generalize induction' cases' obtain").split(" "),
);

const IDENT_START = /[\p{L}_\u03b1-\u03c9\u1d00-\u1dbf]/u;
const IDENT_PART = /[\p{L}\p{N}_'!?.\u2080-\u209c]/u;

/** Split `source` into `{kind, text}` tokens whose texts concatenate to it. */
export function tokenize(source) {
  const chars = Array.from(source);
  const tokens = [];
  let index = 0;
  const push = (kind, start) => tokens.push({ kind, text: chars.slice(start, index).join("") });
  while (index < chars.length) {
    const start = index;
    const char = chars[index];
    const next = chars[index + 1];
    if (char === "-" && next === "-") {
      while (index < chars.length && chars[index] !== "\n") index++;
      push("comment", start);
    } else if (char === "/" && next === "-") {
      let depth = 0;
      while (index < chars.length) {
        if (chars[index] === "/" && chars[index + 1] === "-") {
          depth++;
          index += 2;
        } else if (chars[index] === "-" && chars[index + 1] === "/") {
          depth--;
          index += 2;
          if (depth === 0) break;
        } else index++;
      }
      push("comment", start);
    } else if (char === '"') {
      index++;
      while (index < chars.length && chars[index] !== '"') {
        if (chars[index] === "\\") index++;
        index++;
      }
      index = Math.min(index + 1, chars.length);
      push("string", start);
    } else if (char === "'" && chars[index + 2] === "'" && next !== "'") {
      index += 3;
      push("string", start);
    } else if (/[0-9]/.test(char)) {
      while (index < chars.length && /[0-9a-fA-FxXbBoO._]/.test(chars[index])) index++;
      push("number", start);
    } else if (char === "«") {
      while (index < chars.length && chars[index] !== "»") index++;
      index = Math.min(index + 1, chars.length);
      push("ident", start);
    } else if (IDENT_START.test(char)) {
      while (index < chars.length && IDENT_PART.test(chars[index])) index++;
      const word = chars.slice(start, index).join("");
      const kind = KEYWORDS.has(word) ? "keyword" : TACTICS.has(word) ? "tactic" : "ident";
      tokens.push({ kind, text: word });
    } else if (char === "#") {
      index++;
      while (index < chars.length && /[a-z_]/.test(chars[index])) index++;
      push("keyword", start);
    } else if (char === "@" && next === "[") {
      index += 2;
      push("keyword", start);
    } else if (/\s/.test(char)) {
      while (index < chars.length && /\s/.test(chars[index]) ) index++;
      push("space", start);
    } else {
      index++;
      push("symbol", start);
    }
  }
  return tokens;
}

/** Split tokens at line ends: one array of tokens per source line. */
export function tokenLines(source) {
  const lines = [[]];
  for (const token of tokenize(source)) {
    const parts = token.text.split("\n");
    parts.forEach((part, position) => {
      if (position > 0) lines.push([]);
      if (part) lines[lines.length - 1].push({ kind: token.kind, text: part });
    });
  }
  return lines;
}

/**
 * The source as a DOM element: numbered lines, highlighted, each message
 * shown under its line (1-based) with a caret at its column (0-based, in
 * code points, as Lean counts).
 */
export function renderSource(source, messages = []) {
  const figure = document.createElement("div");
  figure.className = "source";
  figure.setAttribute("role", "group");
  figure.setAttribute("aria-label", "source with messages");
  const lines = tokenLines(source);
  const byLine = new Map();
  for (const message of messages) {
    const line = Math.min(Math.max(message.line || 1, 1), lines.length);
    if (!byLine.has(line)) byLine.set(line, []);
    byLine.get(line).push(message);
  }
  lines.forEach((tokens, position) => {
    const number = position + 1;
    const row = document.createElement("div");
    row.className = "line";
    row.dataset.line = String(number);
    const gutter = document.createElement("span");
    gutter.className = "gutter";
    gutter.textContent = String(number);
    gutter.setAttribute("aria-hidden", "true");
    const code = document.createElement("code");
    for (const token of tokens) {
      const span = document.createElement("span");
      span.className = `tok-${token.kind}`;
      span.textContent = token.text;
      code.append(span);
    }
    row.append(gutter, code);
    figure.append(row);
    for (const message of byLine.get(number) || []) {
      const note = document.createElement("div");
      note.className = `message severity-${message.severity}`;
      note.dataset.line = String(message.line);
      note.dataset.column = String(message.column);
      const caret = document.createElement("span");
      caret.className = "caret";
      caret.textContent = " ".repeat(Math.max(0, message.column || 0)) + "^";
      caret.setAttribute("aria-hidden", "true");
      const text = document.createElement("span");
      text.className = "message-text";
      text.textContent = `${message.severity} at ${message.line}:${message.column}: ${message.data}`;
      note.append(caret, text);
      figure.append(note);
    }
  });
  return figure;
}

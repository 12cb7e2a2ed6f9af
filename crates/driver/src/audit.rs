//! The farm's own audit command: the channel through which the verdict learns
//! what a snippet declared, which axioms each declaration depends on, and
//! what each declaration's type is as a term.
//!
//! Every REPL defines, right after importing its header and before any
//! snippet runs, a command whose name carries a secret nonce
//! (`#leanfarm_audit_<nonce>`). The snippet never sees the nonce, so it cannot
//! name, redefine or imitate that command: a snippet's own `#print axioms`
//! output, or any message it prints, is never read as an audit. The command
//! lists every constant in the environment that the imports did not bring
//! (`Environment.constants.map₂`), internal and private ones included, with
//! its kind, its axioms (`Lean.collectAxioms`), its type as Lean prints it,
//! and its type as a term key: the expression written out with constants by
//! full name, universe levels and literals, and binder names and binder
//! annotations left out, so two types have the same key exactly when they are
//! the same term up to the names of bound variables and universe parameters.
//!
//! The command's own helper constants live in the same environment; the
//! driver runs the audit once on the fresh environment and leaves the names it
//! reports out of every later report (`FarmNames`), so nothing of the audit
//! shows in a verdict.
//!
//! This module builds the Lean text of that command and parses its answer. It
//! must never trust a message that does not carry the nonce.

use serde::Deserialize;
use std::collections::HashSet;

/// The prefix of the one info message the audit command prints.
const AUDIT_MESSAGE_PREFIX: &str = "leanfarm-audit";

/// A fresh random nonce (128 bits, hex).
pub(crate) fn new_nonce() -> String {
    let mut bytes = [0u8; 16];
    getrandom_fill(&mut bytes);
    hex::encode(bytes)
}

fn getrandom_fill(buffer: &mut [u8]) {
    use std::io::Read;
    // /dev/urandom is always present on the hosts the farm supports.
    let mut urandom = std::fs::File::open("/dev/urandom").expect("open /dev/urandom");
    urandom.read_exact(buffer).expect("read /dev/urandom");
}

/// The name of the audit command for a nonce.
pub(crate) fn audit_command_name(nonce: &str) -> String {
    format!("#leanfarm_audit_{nonce}")
}

/// The Lean source that defines the audit command in a REPL.
///
/// Written against Lean 4's own API (see docs/verdicts.md for where each
/// name is defined): `Lean.Environment.constants` and `SMap.map₂`,
/// `Lean.ConstantInfo` and its `levelParams`/`type`, `Lean.Expr` and
/// `Lean.Level` constructors, `Lean.collectAxioms`, `Lean.Meta.ppExpr`,
/// `Lean.Elab.Command.liftCoreM`/`liftTermElabM`, `Lean.Json`.
pub(crate) fn audit_definition(nonce: &str) -> String {
    let name = audit_command_name(nonce);
    let namespace = format!("LeanFarmAudit{nonce}");
    format!(
        r#"namespace {namespace}
open Lean

def paramIndex : List Name → Name → Nat → String
  | [], n, _ => "?" ++ n.toString
  | p :: ps, n, i => if p == n then toString i else paramIndex ps n (i + 1)

partial def levelKey (ps : List Name) : Level → String
  | .zero => "0"
  | .succ l => "(s " ++ levelKey ps l ++ ")"
  | .max a b => "(max " ++ levelKey ps a ++ " " ++ levelKey ps b ++ ")"
  | .imax a b => "(imax " ++ levelKey ps a ++ " " ++ levelKey ps b ++ ")"
  | .param n => "(u " ++ paramIndex ps n 0 ++ ")"
  | .mvar _ => "(?u)"

partial def termKey (ps : List Name) : Expr → String
  | .bvar i => "(b " ++ toString i ++ ")"
  | .fvar _ => "(fvar)"
  | .mvar _ => "(mvar)"
  | .sort l => "(S " ++ levelKey ps l ++ ")"
  | .const n ls => "(c " ++ n.toString ++ String.join (ls.map (" " ++ levelKey ps ·)) ++ ")"
  | .app f a => "(a " ++ termKey ps f ++ " " ++ termKey ps a ++ ")"
  | .lam _ t b _ => "(l " ++ termKey ps t ++ " " ++ termKey ps b ++ ")"
  | .forallE _ t b _ => "(p " ++ termKey ps t ++ " " ++ termKey ps b ++ ")"
  | .letE _ t v b _ => "(z " ++ termKey ps t ++ " " ++ termKey ps v ++ " " ++ termKey ps b ++ ")"
  | .lit (.natVal n) => "(n " ++ toString n ++ ")"
  | .lit (.strVal s) => "(t " ++ s.quote ++ ")"
  | .mdata _ e => termKey ps e
  | .proj s i e => "(j " ++ s.toString ++ " " ++ toString i ++ " " ++ termKey ps e ++ ")"

open Elab Command in
elab "{name}" : command => do
  let env ← getEnv
  let mut entries : Array Json := #[]
  for (declName, info) in env.constants.map₂.toList do
    let axioms ← liftCoreM (Lean.collectAxioms declName)
    let kind := match info with
      | .axiomInfo _ => "axiom" | .defnInfo _ => "def" | .thmInfo _ => "theorem"
      | .opaqueInfo _ => "opaque" | .quotInfo _ => "quot" | .inductInfo _ => "inductive"
      | .ctorInfo _ => "constructor" | .recInfo _ => "recursor"
    let type ← liftTermElabM (Meta.ppExpr info.type)
    let key := "(params " ++ toString info.levelParams.length ++ ") " ++ termKey info.levelParams info.type
    entries := entries.push (Json.mkObj [("name", toJson declName.toString), ("kind", toJson kind),
      ("axioms", toJson (axioms.map (·.toString))), ("type", toJson (toString type)),
      ("term", toJson key)])
  logInfo m!"{AUDIT_MESSAGE_PREFIX} {nonce} {{(Json.arr entries).compress}}"

end {namespace}"#
    )
}

/// What kind of constant a declaration is, as Lean's `ConstantInfo` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum DeclarationKind {
    Axiom,
    #[serde(rename = "def")]
    Definition,
    Theorem,
    Opaque,
    Quot,
    Inductive,
    Constructor,
    Recursor,
}

impl DeclarationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeclarationKind::Axiom => "axiom",
            DeclarationKind::Definition => "def",
            DeclarationKind::Theorem => "theorem",
            DeclarationKind::Opaque => "opaque",
            DeclarationKind::Quot => "quot",
            DeclarationKind::Inductive => "inductive",
            DeclarationKind::Constructor => "constructor",
            DeclarationKind::Recursor => "recursor",
        }
    }
}

/// One constant the snippet added, as the audit command reports it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub(crate) struct AuditEntry {
    pub name: String,
    pub kind: DeclarationKind,
    pub axioms: Vec<String>,
    /// The type as Lean prints it (for people; never compared).
    #[serde(rename = "type")]
    pub type_text: String,
    /// The type as a term key (compared for pinned statements).
    pub term: String,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AuditError {
    #[error("the audit command printed no report")]
    Missing,
    #[error("the audit command printed {0} reports")]
    Ambiguous(usize),
    #[error("the audit report is not valid: {0}")]
    Malformed(String),
}

/// The constants of the audit itself, present in every environment of a
/// REPL; they are never reported.
#[derive(Clone, Debug, Default)]
pub(crate) struct FarmNames(HashSet<String>);

impl FarmNames {
    pub fn new(entries: &[AuditEntry]) -> Self {
        FarmNames(entries.iter().map(|entry| entry.name.clone()).collect())
    }

    /// The entries that are not the audit's own.
    pub fn remove_from(&self, entries: Vec<AuditEntry>) -> Vec<AuditEntry> {
        entries
            .into_iter()
            .filter(|entry| !self.0.contains(&entry.name))
            .collect()
    }
}

/// Find the one audit report for `nonce` among the data of the info messages
/// the audit command produced, and parse it.
pub(crate) fn parse_audit<'a>(
    nonce: &str,
    info_messages: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<AuditEntry>, AuditError> {
    let prefix = format!("{AUDIT_MESSAGE_PREFIX} {nonce} ");
    let reports: Vec<&str> = info_messages
        .into_iter()
        .filter_map(|data| data.strip_prefix(&prefix))
        .collect();
    match reports.as_slice() {
        [] => Err(AuditError::Missing),
        [report] => {
            serde_json::from_str(report).map_err(|error| AuditError::Malformed(error.to_string()))
        }
        many => Err(AuditError::Ambiguous(many.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_unique_and_hex() {
        let first = new_nonce();
        let second = new_nonce();
        assert_ne!(first, second);
        assert_eq!(first.len(), 32);
        assert!(first.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn definition_names_the_secret_command_and_audits_everything() {
        let definition = audit_definition("abc123");
        assert!(definition.contains("elab \"#leanfarm_audit_abc123\""));
        assert!(definition.contains("leanfarm-audit abc123 "));
        assert!(
            !definition.contains("isInternal"),
            "internal and private names are audited too"
        );
    }

    #[test]
    fn parses_the_report_with_the_nonce_only() {
        let report = r#"leanfarm-audit n1 [{"name":"t","kind":"theorem","axioms":["propext"],"type":"1 = 1","term":"(c Eq)"}]"#;
        let forged = r#"leanfarm-audit guess [{"name":"t","kind":"theorem","axioms":[],"type":"","term":""}]"#;
        let entries = parse_audit("n1", [forged, report, "unrelated"]).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].axioms, vec!["propext".to_string()]);
        assert_eq!(entries[0].kind, DeclarationKind::Theorem);
        assert_eq!(entries[0].term, "(c Eq)");
    }

    #[test]
    fn missing_duplicate_and_malformed_reports_are_errors() {
        assert_eq!(parse_audit("n1", ["nothing"]), Err(AuditError::Missing));
        let report = "leanfarm-audit n1 []";
        assert_eq!(
            parse_audit("n1", [report, report]),
            Err(AuditError::Ambiguous(2))
        );
        assert!(matches!(
            parse_audit("n1", ["leanfarm-audit n1 {"]),
            Err(AuditError::Malformed(_))
        ));
        let unknown_kind =
            r#"leanfarm-audit n1 [{"name":"t","kind":"macro","axioms":[],"type":"","term":""}]"#;
        assert!(matches!(
            parse_audit("n1", [unknown_kind]),
            Err(AuditError::Malformed(_))
        ));
    }

    #[test]
    fn the_audits_own_names_are_left_out() {
        let entry = |name: &str| AuditEntry {
            name: name.into(),
            kind: DeclarationKind::Definition,
            axioms: vec![],
            type_text: String::new(),
            term: String::new(),
        };
        let farm = FarmNames::new(&[entry("LeanFarmAuditX.termKey")]);
        let kept = farm.remove_from(vec![entry("LeanFarmAuditX.termKey"), entry("t")]);
        assert_eq!(kept, vec![entry("t")]);
    }
}

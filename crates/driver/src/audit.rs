//! The farm's own audit command: the channel through which the verdict learns
//! what a snippet declared and which axioms each declaration depends on.
//!
//! Every REPL defines, right after importing its header and before any
//! snippet runs, a command whose name carries a secret nonce
//! (`#leanfarm_audit_<nonce>`). The snippet never sees the nonce, so it cannot
//! name, redefine or imitate that command: a snippet's own `#print axioms`
//! output, or any message it prints, is never read as an audit. The command
//! lists every constant added to the environment after it was defined (that
//! is, by the snippet), with its kind, its axioms (`Lean.collectAxioms`) and
//! its type.
//!
//! This module builds the Lean text of that command and parses its answer. It
//! must never trust a message that does not carry the nonce.

use serde::Deserialize;

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
pub(crate) fn audit_definition(nonce: &str) -> String {
    let name = audit_command_name(nonce);
    format!(
        r#"open Lean Elab Command in
elab "{name}" : command => do
  let env ← getEnv
  let mut entries : Array Json := #[]
  for (declName, info) in env.constants.map₂.toList do
    if declName.isInternal then continue
    let axioms ← liftCoreM (Lean.collectAxioms declName)
    let kind := match info with
      | .axiomInfo _ => "axiom" | .defnInfo _ => "def" | .thmInfo _ => "theorem"
      | .opaqueInfo _ => "opaque" | .quotInfo _ => "quot" | .inductInfo _ => "inductive"
      | .ctorInfo _ => "constructor" | .recInfo _ => "recursor"
    let type ← liftTermElabM (Meta.ppExpr info.type)
    entries := entries.push (Json.mkObj [("name", toJson declName.toString), ("kind", toJson kind),
      ("axioms", toJson (axioms.map (·.toString))), ("type", toJson (toString type))])
  logInfo m!"{AUDIT_MESSAGE_PREFIX} {nonce} {{(Json.arr entries).compress}}""#
    )
}

/// One declaration the snippet added, as the audit command reports it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub(crate) struct AuditEntry {
    pub name: String,
    pub kind: String,
    pub axioms: Vec<String>,
    #[serde(rename = "type")]
    pub type_text: String,
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
    fn definition_names_the_secret_command() {
        let definition = audit_definition("abc123");
        assert!(definition.contains("elab \"#leanfarm_audit_abc123\""));
        assert!(definition.contains("leanfarm-audit abc123 "));
    }

    #[test]
    fn parses_the_report_with_the_nonce_only() {
        let report = r#"leanfarm-audit n1 [{"name":"t","kind":"theorem","axioms":["propext"],"type":": 1 = 1"}]"#;
        let forged =
            r#"leanfarm-audit guess [{"name":"t","kind":"theorem","axioms":[],"type":""}]"#;
        let entries = parse_audit("n1", [forged, report, "unrelated"]).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].axioms, vec!["propext".to_string()]);
        assert_eq!(entries[0].type_text, ": 1 = 1");
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
    }
}

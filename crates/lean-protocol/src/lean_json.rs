//! The output of `lean --json FILE`: one JSON message per line.

use crate::Pos;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeanJsonMessage {
    #[serde(rename = "fileName")]
    pub file_name: String,
    pub pos: Pos,
    #[serde(rename = "endPos", default)]
    pub end_pos: Option<Pos>,
    /// `information`, `warning` or `error`.
    pub severity: String,
    #[serde(default)]
    pub caption: String,
    pub data: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

pub fn parse_lean_json_line(line: &str) -> Result<LeanJsonMessage, serde_json::Error> {
    serde_json::from_str(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_lean_json_line() {
        let line = r#"{"severity":"error","pos":{"line":3,"column":2},"kind":"[anonymous]","fileName":"a.lean","endPos":{"line":3,"column":5},"data":"unknown identifier 'x'","caption":""}"#;
        let message = parse_lean_json_line(line).unwrap();
        assert_eq!(message.severity, "error");
        assert_eq!(message.pos, Pos { line: 3, column: 2 });
        assert!(parse_lean_json_line("{\"severity\": 1}").is_err());
    }
}

//! The documented cap on every field of every request body (docs/api.md,
//! "Limits"), checked before anything is stored: a string's length in
//! bytes, a list's length in items. Snippet size, batch size, timeout and
//! the whole body's size are `Limits`' (they are settings); these caps are
//! fixed.
//!
//! Every refusal is `field_too_large` (413) naming the field by its JSON
//! path, or `invalid_pinned_statement` (400). A message here never quotes
//! the field's content, only its size.

use crate::error::{excerpt, ApiError};
use leanfarm_core::{CheckRequest, Policy};

/// A snippet's `id` (`custom_id` in Kimina's `/verify`, as JSON text).
pub(crate) const MAX_CUSTOM_ID_BYTES: usize = 256;
/// Names in `policy.allowed_axioms`.
pub(crate) const MAX_ALLOWED_AXIOMS: usize = 256;
/// One name in `policy.allowed_axioms`.
pub(crate) const MAX_AXIOM_NAME_BYTES: usize = 1024;
/// `policy.pinned.name`.
pub(crate) const MAX_PINNED_NAME_BYTES: usize = 1024;
/// `policy.pinned.statement`.
pub(crate) const MAX_PINNED_STATEMENT_BYTES: usize = 64 << 10;
/// `policy.pinned.preamble`.
pub(crate) const MAX_PINNED_PREAMBLE_BYTES: usize = 64 << 10;
/// `toolchain`, `project` (of a submission or a worker's lease request).
pub(crate) const MAX_TARGET_NAME_BYTES: usize = 256;
/// Kimina's `infotree` / `infotree_type`.
pub(crate) const MAX_INFOTREE_BYTES: usize = 32;
/// A worker's `worker_id`.
pub(crate) const MAX_WORKER_ID_BYTES: usize = 256;
/// Headers in a lease request's `warm_headers`.
pub(crate) const MAX_WARM_HEADERS: usize = 1024;
/// One header in `warm_headers`.
pub(crate) const MAX_WARM_HEADER_BYTES: usize = 64 << 10;
/// Leases in one renew request.
pub(crate) const MAX_RENEW_LEASES: usize = 1024;
/// A `job_id` or `lease_id` in the worker API, and `batch_id` or `after`
/// in a query.
pub(crate) const MAX_ID_BYTES: usize = 128;
/// A release's `error`.
pub(crate) const MAX_RELEASE_ERROR_BYTES: usize = 64 << 10;
/// A completed verdict, as JSON.
pub(crate) const MAX_VERDICT_BYTES: usize = 4 << 20;

/// Refuse `text` when it is longer than `limit` bytes.
pub(crate) fn string(field: &str, text: &str, limit: usize) -> Result<(), ApiError> {
    if text.len() > limit {
        return Err(ApiError::FieldTooLarge {
            field: field.to_string(),
            size: text.len(),
            limit,
            unit: "bytes",
        });
    }
    Ok(())
}

/// `string` for an optional field.
pub(crate) fn optional_string(
    field: &str,
    text: Option<&str>,
    limit: usize,
) -> Result<(), ApiError> {
    text.map_or(Ok(()), |text| string(field, text, limit))
}

/// Refuse a list of more than `limit` items.
pub(crate) fn list<T>(field: &str, items: &[T], limit: usize) -> Result<(), ApiError> {
    if items.len() > limit {
        return Err(ApiError::FieldTooLarge {
            field: field.to_string(),
            size: items.len(),
            limit,
            unit: "items",
        });
    }
    Ok(())
}

/// A snippet's custom id, its infotree option and its policy (the code,
/// timeout and batch are `submit`'s).
pub(crate) fn check_request(index: usize, request: &CheckRequest) -> Result<(), ApiError> {
    optional_string(
        &format!("snippets[{index}].id"),
        request.custom_id.as_deref(),
        MAX_CUSTOM_ID_BYTES,
    )?;
    optional_string("infotree", request.infotree.as_deref(), MAX_INFOTREE_BYTES)?;
    policy(&request.policy)
}

/// The policy's axioms (count and each name) and its pinned statement,
/// which must also parse: a statement no snippet can match would only fail
/// every job of the batch.
pub(crate) fn policy(policy: &Policy) -> Result<(), ApiError> {
    list(
        "policy.allowed_axioms",
        &policy.allowed_axioms,
        MAX_ALLOWED_AXIOMS,
    )?;
    for (index, axiom) in policy.allowed_axioms.iter().enumerate() {
        string(
            &format!("policy.allowed_axioms[{index}]"),
            axiom,
            MAX_AXIOM_NAME_BYTES,
        )?;
    }
    let Some(pinned) = &policy.pinned else {
        return Ok(());
    };
    string("policy.pinned.name", &pinned.name, MAX_PINNED_NAME_BYTES)?;
    string(
        "policy.pinned.statement",
        &pinned.statement,
        MAX_PINNED_STATEMENT_BYTES,
    )?;
    optional_string(
        "policy.pinned.preamble",
        pinned.preamble.as_deref(),
        MAX_PINNED_PREAMBLE_BYTES,
    )?;
    for (field, text) in [
        ("name", Some(pinned.name.as_str())),
        ("statement", Some(pinned.statement.as_str())),
        ("preamble", pinned.preamble.as_deref()),
    ] {
        if text.is_some_and(|text| text.contains('\0')) {
            return Err(ApiError::InvalidPinnedStatement(format!(
                "policy.pinned.{field} contains a NUL byte"
            )));
        }
    }
    pinned.signature().map_err(|error| {
        // The error may quote the name: only an excerpt of it.
        let message = match error {
            leanfarm_core::StatementError::WrongName { expected } => {
                format!("the pinned statement must declare `{}`", excerpt(&expected))
            }
            other => other.to_string(),
        };
        ApiError::InvalidPinnedStatement(message)
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use leanfarm_core::PinnedStatement;

    fn pinned(name: &str, statement: &str, preamble: Option<&str>) -> Policy {
        Policy {
            pinned: Some(PinnedStatement {
                name: name.into(),
                statement: statement.into(),
                preamble: preamble.map(str::to_string),
            }),
            ..Policy::default()
        }
    }

    fn code(result: Result<(), ApiError>) -> &'static str {
        result.err().map_or("ok", |error| error.code_and_status().0)
    }

    #[test]
    fn a_pinned_statement_must_parse_and_fit() {
        assert_eq!(code(policy(&pinned("t", "theorem t : 1 = 1", None))), "ok");
        assert_eq!(
            code(policy(&pinned("t", "theorem u : 1 = 1", None))),
            "invalid_pinned_statement"
        );
        assert_eq!(
            code(policy(&pinned("t", "def t : 1 = 1", None))),
            "invalid_pinned_statement"
        );
        assert_eq!(
            code(policy(&pinned("t", "theorem t", None))),
            "invalid_pinned_statement"
        );
        assert_eq!(
            code(policy(&pinned("t", "theorem t : 1 = 1", Some("open\0Nat")))),
            "invalid_pinned_statement"
        );
        let long = format!("theorem t : {} = 1", "1 + ".repeat(20_000));
        assert_eq!(code(policy(&pinned("t", &long, None))), "field_too_large");
        let preamble = "open Nat\n".repeat(10_000);
        assert_eq!(
            code(policy(&pinned("t", "theorem t : 1 = 1", Some(&preamble)))),
            "field_too_large"
        );
        let name = "n".repeat(MAX_PINNED_NAME_BYTES + 1);
        assert_eq!(
            code(policy(&pinned(&name, "theorem t : 1 = 1", None))),
            "field_too_large"
        );
    }

    #[test]
    fn a_wrong_name_is_quoted_only_in_part() {
        let name = "n".repeat(MAX_PINNED_NAME_BYTES);
        let error = policy(&pinned(&name, "theorem t : 1 = 1", None)).unwrap_err();
        assert!(error.to_string().len() < 200, "{error}");
    }

    #[test]
    fn the_axiom_list_is_capped_in_count_and_in_each_name() {
        let many = Policy {
            allowed_axioms: vec!["propext".into(); MAX_ALLOWED_AXIOMS + 1],
            ..Policy::default()
        };
        let error = policy(&many).unwrap_err();
        assert_eq!(error.code_and_status().0, "field_too_large");
        assert!(error.to_string().contains("policy.allowed_axioms"));
        let long = Policy {
            allowed_axioms: vec!["a".repeat(MAX_AXIOM_NAME_BYTES + 1)],
            ..Policy::default()
        };
        let error = policy(&long).unwrap_err();
        assert!(error.to_string().contains("policy.allowed_axioms[0]"));
        let at_the_limit = Policy {
            allowed_axioms: vec!["a".repeat(MAX_AXIOM_NAME_BYTES); MAX_ALLOWED_AXIOMS],
            ..Policy::default()
        };
        assert_eq!(code(policy(&at_the_limit)), "ok");
    }
}

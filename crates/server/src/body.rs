//! Reading a JSON request body with the API's own errors (axum's
//! rejections are not in the error table), for every handler that takes one.
//!
//! It must never accept trailing data or a body over the size limit.

use crate::error::ApiError;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;

/// Parse a JSON body with our own errors (axum's rejections are not in the table).
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(
    state: &AppState,
    body: &Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body = match body {
        Ok(body) => body,
        Err(BytesRejection::FailedToBufferBody(_)) => {
            return Err(ApiError::BodyTooLarge(state.limits.max_body_bytes))
        }
        Err(other) => return Err(ApiError::InvalidRequest(other.body_text())),
    };
    let text = std::str::from_utf8(body)
        .map_err(|error| ApiError::InvalidJson(format!("body is not UTF-8: {error}")))?;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    T::deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|_| value))
        .map_err(|error| match error.classify() {
            serde_json::error::Category::Data => ApiError::InvalidRequest(error.to_string()),
            _ => ApiError::InvalidJson(error.to_string()),
        })
}

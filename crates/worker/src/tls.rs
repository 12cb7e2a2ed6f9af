//! The HTTP client of a worker (and of `leanfarm check`): reqwest over
//! rustls, trusting the system's root certificates and, when given, a CA
//! of the operator's (a PEM file, e.g. a private CA for `https://` farms).
//!
//! This module must never turn certificate verification off.

use std::path::{Path, PathBuf};

/// Why the client's trust settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("cannot read the ca certificate {path}: {problem}")]
    Unreadable { path: PathBuf, problem: String },
    #[error("{path} holds no certificate (PEM `BEGIN CERTIFICATE`)")]
    NoCertificate { path: PathBuf },
}

/// A client builder that trusts the system's roots and `ca_cert`'s certificates.
pub fn client_builder(ca_cert: Option<&Path>) -> Result<reqwest::ClientBuilder, CaError> {
    let mut builder = reqwest::Client::builder().use_rustls_tls();
    let Some(path) = ca_cert else {
        return Ok(builder);
    };
    let pem = std::fs::read(path).map_err(|error| CaError::Unreadable {
        path: path.to_path_buf(),
        problem: error.to_string(),
    })?;
    let certificates =
        reqwest::Certificate::from_pem_bundle(&pem).map_err(|error| CaError::Unreadable {
            path: path.to_path_buf(),
            problem: describe(&error),
        })?;
    if certificates.is_empty() {
        return Err(CaError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    for certificate in certificates {
        builder = builder.add_root_certificate(certificate);
    }
    Ok(builder)
}

/// An error and every cause under it, on one line: reqwest's own message
/// ("error sending request") hides why, e.g. an untrusted certificate.
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let more = inner.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = inner.source();
    }
    text
}

/// The TLS failure under `error`, if the request failed in the TLS
/// handshake (an untrusted or mismatched certificate, no common protocol).
pub fn tls_failure(error: &reqwest::Error) -> Option<String> {
    rustls_error_in(error)
}

/// The rustls error in `error`'s causes, looking inside wrapped I/O errors.
fn rustls_error_in(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    if let Some(tls) = error.downcast_ref::<rustls::Error>() {
        return Some(tls.to_string());
    }
    if let Some(io) = error.downcast_ref::<std::io::Error>() {
        if let Some(inner) = io.get_ref() {
            if let Some(found) = rustls_error_in(inner) {
                return Some(found);
            }
        }
    }
    error.source().and_then(rustls_error_in)
}

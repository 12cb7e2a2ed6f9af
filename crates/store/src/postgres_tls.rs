//! TLS to PostgreSQL with rustls, set by libpq's URL parameters:
//! `sslmode` (`disable`, `prefer`, `require`, `verify-ca`, `verify-full`)
//! and `sslrootcert` (a PEM file of CA certificates, or `system` for the
//! machine's roots). tokio-postgres itself knows only `disable`, `prefer`
//! and `require` and no `sslrootcert`: this module reads both, and hands
//! tokio-postgres the rest of the URL with the `sslmode` it knows.
//!
//! As in libpq: `require` encrypts without checking the certificate,
//! unless `sslrootcert` is given (then it checks the chain, as
//! `verify-ca`); `verify-ca` checks the chain; `verify-full` the chain and
//! that the certificate names the host (`host`, while `hostaddr` may give
//! the address to connect to). Without `sslmode` the connection is plain,
//! as before TLS existed here.
//!
//! This module must never accept an unverified certificate under
//! `verify-ca` or `verify-full`.

use crate::StoreError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

/// What a connection's certificate must satisfy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verification {
    /// Encrypted, certificate unchecked (`prefer`, `require`).
    None,
    /// The chain leads to a trusted root (`verify-ca`).
    Chain,
    /// The chain, and the host name (`verify-full`).
    ChainAndName,
}

/// A PostgreSQL URL made ready for tokio-postgres: its configuration, and
/// the TLS connector when the URL asks for TLS.
pub(crate) struct PostgresTarget {
    pub config: tokio_postgres::Config,
    pub tls: Option<MakeRustlsConnect>,
}

fn unsupported(url: &str, problem: String) -> StoreError {
    StoreError::UnsupportedUrl(format!("{}: {problem}", redact(url)))
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        None => url.to_string(),
    }
}

/// `%XX` decoding of a query value.
fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = value.get(index + 1..index + 3)?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).ok()
}

/// Read `url` (a `postgres://` URL): its configuration and TLS connector.
pub(crate) fn target(url: &str) -> Result<PostgresTarget, StoreError> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut kept: Vec<&str> = Vec::new();
    let mut ssl_mode: Option<String> = None;
    let mut root_certificate: Option<String> = None;
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = || {
            percent_decode(value)
                .ok_or_else(|| unsupported(url, format!("`{key}` is not percent-encoded text")))
        };
        match key {
            "sslmode" => ssl_mode = Some(decode()?),
            "sslrootcert" => root_certificate = Some(decode()?),
            _ => kept.push(pair),
        }
    }
    let verification = match (ssl_mode.as_deref(), &root_certificate) {
        (None | Some("disable"), _) => None,
        (Some("prefer"), _) => Some(Verification::None),
        (Some("require"), None) => Some(Verification::None),
        (Some("require" | "verify-ca"), Some(_)) => Some(Verification::Chain),
        (Some("verify-full"), Some(_)) => Some(Verification::ChainAndName),
        (Some(mode @ ("verify-ca" | "verify-full")), None) => {
            return Err(unsupported(
                url,
                format!("sslmode={mode} needs sslrootcert=FILE (PEM) or sslrootcert=system"),
            ));
        }
        (Some(other), _) => {
            return Err(unsupported(
                url,
                format!(
                    "sslmode `{other}` is not disable, prefer, require, verify-ca or verify-full"
                ),
            ));
        }
    };
    // tokio-postgres: `prefer` may fall back to a plain connection,
    // every other mode that uses TLS requires it.
    let handed_mode = match ssl_mode.as_deref() {
        None => None,
        Some("disable") => Some("disable"),
        Some("prefer") => Some("prefer"),
        Some(_) => Some("require"),
    };
    if let Some(mode) = handed_mode {
        kept.push(match mode {
            "disable" => "sslmode=disable",
            "prefer" => "sslmode=prefer",
            _ => "sslmode=require",
        });
    }
    let rewritten = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let mut config: tokio_postgres::Config = rewritten
        .parse()
        .map_err(|error| unsupported(url, format!("{error}")))?;
    let Some(verification) = verification else {
        config.ssl_mode(tokio_postgres::config::SslMode::Disable);
        return Ok(PostgresTarget { config, tls: None });
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match verification {
        Verification::None => Arc::new(Unchecked {
            provider: Arc::clone(&provider),
        }),
        Verification::Chain | Verification::ChainAndName => {
            let roots = root_store(url, root_certificate.as_deref().unwrap_or("system"))?;
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                    .build()
                    .map_err(|error| unsupported(url, format!("sslrootcert: {error}")))?;
            if verification == Verification::Chain {
                Arc::new(ChainOnly { webpki })
            } else {
                webpki
            }
        }
    };
    let mut client_config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| unsupported(url, format!("tls: {error}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    // Pooled connections live long: every one makes a full handshake and
    // checks the certificate.
    client_config.resumption = rustls::client::Resumption::disabled();
    Ok(PostgresTarget {
        config,
        tls: Some(MakeRustlsConnect::new(client_config)),
    })
}

/// The CA certificates of `sslrootcert`: a PEM file, or `system`.
fn root_store(url: &str, source: &str) -> Result<RootCertStore, StoreError> {
    let mut roots = RootCertStore::empty();
    if source == "system" {
        let found = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            return Err(unsupported(
                url,
                "sslrootcert=system: this machine has no root certificates".to_string(),
            ));
        }
        return Ok(roots);
    }
    let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(source)
        .and_then(|certificates| certificates.collect())
        .map_err(|error| unsupported(url, format!("sslrootcert {source}: {error}")))?;
    let (added, _) = roots.add_parsable_certificates(certificates);
    if added == 0 {
        return Err(unsupported(
            url,
            format!("sslrootcert {source} holds no usable certificate"),
        ));
    }
    Ok(roots)
}

/// `verify-ca`: the chain must lead to a trusted root; the name is not checked.
#[derive(Debug)]
struct ChainOnly {
    webpki: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The name is checked last, after the chain: a name mismatch means
        // the chain itself was trusted.
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki
            .verify_tls12_signature(message, certificate, signature)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki
            .verify_tls13_signature(message, certificate, signature)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// `prefer` and `require` without `sslrootcert`: encryption against a
/// passive listener, no identity (libpq's meaning of these modes). The
/// handshake's signatures are still checked against the presented key.
#[derive(Debug)]
struct Unchecked {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            certificate,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            certificate,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_tls_parameters_are_read_and_the_rest_handed_on() {
        let plain = target("postgres://u:p@h:5/db?application_name=x").unwrap();
        assert!(plain.tls.is_none());
        assert_eq!(plain.config.get_application_name(), Some("x"));
        let require = target("postgres://u@h/db?sslmode=require").unwrap();
        assert!(require.tls.is_some());
        assert_eq!(
            require.config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
        let disabled = target("postgres://u@h/db?sslmode=disable").unwrap();
        assert!(disabled.tls.is_none());
    }

    #[test]
    fn verification_without_a_root_or_an_unknown_mode_is_refused_clearly() {
        for (url, expected) in [
            (
                "postgres://u:secret@h/db?sslmode=verify-full",
                "needs sslrootcert",
            ),
            (
                "postgres://u:secret@h/db?sslmode=verify-ca",
                "needs sslrootcert",
            ),
            ("postgres://u:secret@h/db?sslmode=allow", "is not disable"),
            (
                "postgres://u:secret@h/db?sslmode=verify-full&sslrootcert=/nonexistent.pem",
                "sslrootcert /nonexistent.pem",
            ),
        ] {
            let Err(error) = target(url) else {
                panic!("{url} was accepted")
            };
            let text = error.to_string();
            assert!(text.contains(expected), "{url}: {text}");
            assert!(!text.contains("secret"), "{text}");
        }
    }
}

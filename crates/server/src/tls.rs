//! TLS for the farm's listener, with rustls: a certificate chain and its
//! private key, read from PEM files once at start.
//!
//! This module must never accept a connection itself: `serve` runs the
//! handshake inside its accept loop, under the connection cap and the
//! header read timeout.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why the listener's TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the certificate chain {path}: {problem}")]
    Certificate { path: PathBuf, problem: String },
    #[error("{path} holds no certificate (PEM `BEGIN CERTIFICATE`)")]
    NoCertificate { path: PathBuf },
    #[error("cannot read the private key {path}: {problem}")]
    PrivateKey { path: PathBuf, problem: String },
    #[error("the certificate and the private key do not make a server identity: {0}")]
    Identity(String),
}

/// A TLS server configuration: what `Farm::start_with_tls` terminates with.
#[derive(Clone)]
pub struct ServerTls {
    pub(crate) acceptor: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("ServerTls")
    }
}

impl ServerTls {
    /// Read a PEM certificate chain (leaf first) and its PEM private key
    /// (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem_files(certificate: &Path, key: &Path) -> Result<ServerTls, TlsError> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(certificate)
            .map_err(|error| TlsError::Certificate {
                path: certificate.to_path_buf(),
                problem: error.to_string(),
            })?
            .collect::<Result<_, _>>()
            .map_err(|error| TlsError::Certificate {
                path: certificate.to_path_buf(),
                problem: error.to_string(),
            })?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate {
                path: certificate.to_path_buf(),
            });
        }
        let private_key =
            PrivateKeyDer::from_pem_file(key).map_err(|error| TlsError::PrivateKey {
                path: key.to_path_buf(),
                problem: error.to_string(),
            })?;
        let mut config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, private_key)
            .map_err(|error| TlsError::Identity(error.to_string()))?;
        // The listener speaks HTTP/1.1 only.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ServerTls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        })
    }
}

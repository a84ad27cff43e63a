//! TLS on a listener: the rustls server configuration built from the certificate, key and
//! client-CA files, swapped whole on reload so that new connections get the new certificate
//! while established ones keep the session they negotiated.

use std::io;
use std::sync::Arc;

use parking_lot::RwLock;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig, crypto};
use tokio_rustls::server::TlsStream;

use crate::config::{ClientAuth, TlsConfig};

/// A listener's TLS settings and the server configuration currently in force.
#[derive(Debug)]
pub struct Tls {
    settings: TlsConfig,
    current: RwLock<Arc<ServerConfig>>,
}

impl Tls {
    /// Reads the files named in `settings`.
    pub fn new(settings: &TlsConfig) -> Result<Tls, String> {
        Ok(Tls {
            current: RwLock::new(Arc::new(server_config(settings)?)),
            settings: settings.clone(),
        })
    }

    /// Reads the files again and uses them for every connection accepted from now on. On
    /// error the configuration in force stays.
    pub fn reload(&self) -> Result<(), String> {
        let fresh = Arc::new(server_config(&self.settings)?);
        *self.current.write() = fresh;
        Ok(())
    }

    /// The TLS handshake on an accepted connection, with the configuration in force now.
    pub async fn accept(&self, stream: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        let acceptor = TlsAcceptor::from(Arc::clone(&self.current.read()));
        acceptor.accept(stream).await
    }
}

/// Builds the rustls configuration; every error names the file and the problem.
pub fn server_config(settings: &TlsConfig) -> Result<ServerConfig, String> {
    let chain = CertificateDer::pem_file_iter(&settings.cert_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", settings.cert_file))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in it", settings.cert_file));
    }
    let key = PrivateKeyDer::from_pem_file(&settings.key_file)
        .map_err(|e| format!("{}: {e}", settings.key_file))?;
    // ring is the one provider built in; naming it avoids relying on a process default.
    let provider = Arc::new(crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match settings.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Optional | ClientAuth::Required => {
            let mut roots = RootCertStore::empty();
            let cas = CertificateDer::pem_file_iter(&settings.client_ca_file)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("{}: {e}", settings.client_ca_file))?;
            for ca in cas {
                roots
                    .add(ca)
                    .map_err(|e| format!("{}: {e}", settings.client_ca_file))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match settings.client_auth {
                ClientAuth::Optional => verifier.allow_unauthenticated(),
                _ => verifier,
            };
            let verifier = verifier
                .build()
                .map_err(|e| format!("{}: {e}", settings.client_ca_file))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("{} and {}: {e}", settings.cert_file, settings.key_file))?;
    // No TLS 1.3 session tickets: STOMP connections live long, so resumption saves little, and
    // tickets arriving after the handshake raced with the first write of clients that read and
    // write one socket from two threads (stomp.py over Python's ssl stalled until a heart-beat).
    config.send_tls13_tickets = 0;
    Ok(config)
}

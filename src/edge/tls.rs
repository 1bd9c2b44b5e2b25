//! TLS for the connections an edge makes (`wss://` to the bridge's hub, to a voice-AI server):
//! rustls with the web's root certificates, plus the CA certificates of `WACALL_CA_FILE` (a PEM
//! file) for a private CA. A plain `ws://` to another machine is allowed but warned about: the
//! edge token, customers' numbers and the SDP (with its DTLS fingerprint) would cross in clear.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio_tungstenite::Connector;

/// Environment variable naming a PEM file of extra CA certificates.
pub const ENV_CA_FILE: &str = "WACALL_CA_FILE";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{ENV_CA_FILE}={}: {detail}", path.display())]
    CaFile { path: PathBuf, detail: String },
    #[error("TLS set-up: {0}")]
    Setup(String),
}

/// A client configuration trusting the web's roots and, if given, the CAs in `ca_file`.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let err = |detail: String| TlsError::CaFile {
            path: path.to_owned(),
            detail,
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| err(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| err(e.to_string()))?;
        if certs.is_empty() {
            return Err(err("no PEM certificate in it".into()));
        }
        for c in certs {
            roots.add(c).map_err(|e| err(e.to_string()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// The connector for `url`: rustls for `wss://` (built once per process, from the roots and
/// `WACALL_CA_FILE`); `None` for `ws://`, which is warned about unless it stays on this machine.
pub fn connector_for(url: &str) -> Result<Option<Connector>, TlsError> {
    if url.starts_with("wss://") {
        static CFG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
        let cfg = CFG.get_or_init(|| {
            let ca = std::env::var_os(ENV_CA_FILE).map(PathBuf::from);
            client_config(ca.as_deref()).map_err(|e| e.to_string())
        });
        return match cfg {
            Ok(c) => Ok(Some(Connector::Rustls(c.clone()))),
            Err(e) => Err(TlsError::Setup(e.clone())),
        };
    }
    if !on_this_machine(url) {
        tracing::warn!(
            url,
            "plain ws:// to another machine: the token, customers' numbers and SDP cross the network in clear; use wss://"
        );
    }
    Ok(None)
}

/// Whether a `ws://` URL's host is this machine (loopback).
fn on_this_machine(url: &str) -> bool {
    let host = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split(['/', '?'])
        .next()
        .unwrap_or("");
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host.split(':').next().unwrap_or("")
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls_are_recognised() {
        assert!(on_this_machine("ws://127.0.0.1:8080/hub"));
        assert!(on_this_machine("ws://localhost/hub"));
        assert!(on_this_machine("ws://[::1]:80/hub"));
        assert!(!on_this_machine("ws://10.0.0.5:8080/hub"));
        assert!(!on_this_machine("ws://bridge.example.com/hub"));
    }

    #[test]
    fn a_bad_ca_file_is_named() {
        let p = std::env::temp_dir().join(format!("wacall-ca-{}.pem", std::process::id()));
        std::fs::write(&p, "not a certificate").unwrap();
        let e = client_config(Some(&p)).unwrap_err().to_string();
        assert!(
            e.contains("WACALL_CA_FILE") && e.contains("no PEM certificate"),
            "{e}"
        );
        std::fs::remove_file(&p).unwrap();
        assert!(client_config(None).is_ok());
    }
}

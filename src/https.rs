//! The TLS set-up shared by the functions' HTTPS clients (ActiveCampaign, captcha providers).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use thiserror::Error;

const USER_AGENT: &str = concat!("ac-webhook-sync/", env!("CARGO_PKG_VERSION"));

/// Why an HTTPS client could not be built (start-up only).
#[derive(Debug, Error)]
pub enum ClientBuildError {
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// A client with the lazy TLS set-up below, our user agent, no redirects followed, and
/// pooled connections kept below the servers' and load balancers' idle timeouts (so a warm
/// container reuses its TLS connection instead of hitting a closed one).
pub(crate) fn client(connect_timeout: Duration) -> Result<reqwest::Client, ClientBuildError> {
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(lazy_roots_tls_config()?)
        .user_agent(USER_AGENT)
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(Duration::from_secs(50))
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

/// reqwest's TLS set-up (its default crypto provider, TLS 1.2 and 1.3) with a verifier that
/// reads the platform's root certificates on the first handshake. Building reqwest's own
/// verifier reads and parses every root certificate on the system, which was about half of the
/// function's start-up; a cold start that answers without calling ActiveCampaign (health,
/// refusals) now never pays for it. Every HTTPS client of the functions is built on it.
fn lazy_roots_tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    Ok(config
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(LazyPlatformVerifier {
            provider,
            verifier: OnceLock::new(),
        }))
        .with_no_client_auth())
}

/// The platform verifier, created when the first certificate is to be checked.
#[derive(Debug)]
struct LazyPlatformVerifier {
    provider: Arc<rustls::crypto::CryptoProvider>,
    verifier: OnceLock<Result<rustls_platform_verifier::Verifier, rustls::Error>>,
}

impl LazyPlatformVerifier {
    fn verifier(&self) -> Result<&rustls_platform_verifier::Verifier, rustls::Error> {
        self.verifier
            .get_or_init(|| rustls_platform_verifier::Verifier::new(self.provider.clone()))
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl rustls::client::danger::ServerCertVerifier for LazyPlatformVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        self.verifier()?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    // Handshake signatures need no root certificates: checked with the provider alone.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_certificates_are_read_on_the_first_verification_not_before() {
        use rustls::client::danger::ServerCertVerifier;
        use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
        let lazy = LazyPlatformVerifier {
            provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
            verifier: OnceLock::new(),
        };
        assert!(!lazy.supported_verify_schemes().is_empty());
        assert!(lazy.verifier.get().is_none(), "nothing read yet");
        let not_a_certificate = CertificateDer::from(vec![0x30, 0x00]);
        let server = ServerName::try_from("example.com").unwrap();
        let verdict =
            lazy.verify_server_cert(&not_a_certificate, &[], &server, &[], UnixTime::now());
        assert!(verdict.is_err(), "a malformed certificate is refused");
        assert!(
            lazy.verifier.get().is_some(),
            "the platform verifier was built"
        );
    }
}

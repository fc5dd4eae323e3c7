//! The TLS set-up shared by every outbound HTTPS connection: the reqwest clients
//! (ActiveCampaign, captcha providers, sender APIs) and the AWS SDK's client (`aws`).
//!
//! Which roots they trust (`TLS_ROOTS`): by default the Mozilla set compiled into the binary
//! (`webpki-roots`), ready without reading a file, so a cold start that syncs pays no root
//! store; `TLS_ROOTS=system` reads the system's store instead (on its first handshake), which
//! follows the Lambda image's updates rather than this project's releases.

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

/// The variable that picks the trusted roots.
pub const ENV_TLS_ROOTS: &str = "TLS_ROOTS";

/// Which root certificates outbound TLS trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsRoots {
    /// Mozilla's set as compiled in (`webpki-roots`): the default.
    CompiledIn,
    /// The system's store, read on the first handshake.
    System,
}

impl TlsRoots {
    /// `TLS_ROOTS`'s value: `webpki` (or unset) or `system`; anything else is refused.
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        match value.map(str::trim) {
            None | Some("" | "webpki") => Ok(Self::CompiledIn),
            Some("system") => Ok(Self::System),
            Some(other) => Err(other.to_string()),
        }
    }

    /// This process's choice, read once (start-up refuses a bad value, see `settings`).
    pub fn configured() -> Self {
        static CHOICE: OnceLock<TlsRoots> = OnceLock::new();
        *CHOICE.get_or_init(|| {
            Self::parse(std::env::var(ENV_TLS_ROOTS).ok().as_deref()).unwrap_or(Self::CompiledIn)
        })
    }
}

/// The compiled-in roots as trust anchors, built once per process and shared by every client.
fn compiled_in_roots() -> Arc<rustls::RootCertStore> {
    static ROOTS: OnceLock<Arc<rustls::RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            Arc::new(rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            })
        })
        .clone()
}

/// The roots of Amazon Trust Services, the CA of every AWS service endpoint's certificate
/// (Amazon Root CA 1 to 4, and the Starfield root that cross-signs them), by their names.
const AMAZON_TRUST_SERVICES: &[&[u8]] = &[
    b"Amazon Root CA ",
    b"Starfield Services Root Certificate Authority - G2",
];

/// Which of the compiled-in roots the AWS SDK trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SdkRoots {
    /// AWS's own endpoints: only Amazon Trust Services' roots. The SDK reads its trust store as
    /// PEM, and decoding all of Mozilla's set was 7 of the 16 M instructions of a queue-mode
    /// cold start; these five are a few hundred thousand.
    AmazonTrustServices,
    /// An HTTPS endpoint set by `AWS_ENDPOINT_URL*` (a proxy, a stand-in): the whole set.
    All,
}

/// The compiled-in roots as PEM certificates, for the AWS SDK's trust store (it takes no
/// other form): the same Mozilla set as [`compiled_in_roots`], from its sibling crate.
pub(crate) fn compiled_in_roots_pem(which: SdkRoots) -> Vec<u8> {
    use base64::Engine;
    let finders: Vec<memchr::memmem::Finder<'_>> = AMAZON_TRUST_SERVICES
        .iter()
        .map(memchr::memmem::Finder::new)
        .collect();
    let chosen = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .filter(|cert| {
            which == SdkRoots::All || finders.iter().any(|f| f.find(cert.as_ref()).is_some())
        });
    let mut pem = Vec::new();
    for cert in chosen {
        let encoded = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
        pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
        for line in encoded.as_bytes().chunks(64) {
            pem.extend_from_slice(line);
            pem.push(b'\n');
        }
        pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
    }
    pem
}

/// A client with the TLS set-up below, our user agent, no redirects followed, and
/// pooled connections kept below the servers' and load balancers' idle timeouts (so a warm
/// container reuses its TLS connection instead of hitting a closed one).
pub(crate) fn client(connect_timeout: Duration) -> Result<reqwest::Client, ClientBuildError> {
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config(TlsRoots::configured())?)
        .user_agent(USER_AGENT)
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(Duration::from_secs(50))
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

/// reqwest's TLS set-up (its default crypto provider, TLS 1.2 and 1.3) trusting `roots`. The
/// system's store is read by a verifier on the first handshake: building reqwest's own reads
/// and parses every root certificate on the system, which was about half of the function's
/// start-up, paid even by cold starts that answer without calling out (health, refusals).
fn tls_config(roots: TlsRoots) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    if roots == TlsRoots::CompiledIn {
        return Ok(config
            .with_root_certificates(compiled_in_roots())
            .with_no_client_auth());
    }
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
    fn tls_roots_are_compiled_in_unless_the_system_is_asked_for() {
        assert_eq!(TlsRoots::parse(None), Ok(TlsRoots::CompiledIn));
        assert_eq!(TlsRoots::parse(Some("webpki")), Ok(TlsRoots::CompiledIn));
        assert_eq!(TlsRoots::parse(Some(" system ")), Ok(TlsRoots::System));
        assert_eq!(TlsRoots::parse(Some("native")), Err("native".to_string()));
        assert!(compiled_in_roots().len() > 100, "Mozilla's set");
        // The SDK's PEM holds the same set: every certificate parses back.
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let parse = |which| -> Vec<CertificateDer<'static>> {
            CertificateDer::pem_slice_iter(&compiled_in_roots_pem(which))
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let all = parse(SdkRoots::All);
        assert_eq!(all.len(), webpki_root_certs::TLS_SERVER_ROOT_CERTS.len());
        assert_eq!(
            all[0].as_ref(),
            webpki_root_certs::TLS_SERVER_ROOT_CERTS[0].as_ref()
        );
        let mut store = rustls::RootCertStore::empty();
        let (valid, invalid) = store.add_parsable_certificates(all);
        assert_eq!((valid, invalid), (compiled_in_roots().len(), 0));
        // Amazon Root CA 1 to 4 and Starfield Services Root G2, as anchors of the same set.
        let amazon = parse(SdkRoots::AmazonTrustServices);
        assert_eq!(amazon.len(), 5);
        let mut store = rustls::RootCertStore::empty();
        assert_eq!(store.add_parsable_certificates(amazon), (5, 0));
        for anchor in &store.roots {
            assert!(compiled_in_roots().roots.contains(anchor));
        }
    }

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

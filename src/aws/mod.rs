//! Everything that knows AWS: the SDK clients' shared configuration (here), Secrets Manager,
//! SQS and DynamoDB behind the core's seams, the Lambda adapters, and each function's setup.
//! The core (pipeline, senders, mapping, delivery, the ActiveCampaign client) imports none of
//! it.
//!
//! The shared AWS SDK configuration: region, credentials and endpoints from the environment
//! (`AWS_ENDPOINT_URL*` included, so tests reach a local moto), with explicit timeouts.
//! Loaded once per process, on the first AWS call: the webhook function uses up to three
//! clients (Secrets Manager, DynamoDB, SQS), each built when first needed (`LazyClient`), and
//! they share one configuration and one HTTP client.

pub mod dead_letters;
pub mod dynamodb;
pub mod lambda;
pub mod logging;
pub mod secrets_manager;
pub mod setup;
pub mod sqs;

use std::sync::Arc;
use std::time::Duration;

use aws_config::ConfigLoader;
use aws_config::timeout::TimeoutConfig;
use aws_smithy_http_client::{Builder, tls};
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use tokio::sync::OnceCell;

static SDK_CONFIG: OnceCell<aws_config::SdkConfig> = OnceCell::const_new();

/// How long any AWS call may take: an attempt, and the call with its retries.
pub fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(5))
        .build()
}

/// The loader every function uses; tests add an endpoint and credentials to it.
pub fn loader() -> ConfigLoader {
    let loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(SharedHttpClient::new(FirstRequestTls(https_client(
            crate::https::TlsRoots::configured(),
        ))))
        .timeout_config(timeouts());
    // Lambda gives a function its role's credentials in the environment. Taken from there
    // directly, the default chain is not built: its web-identity provider alone builds an STS
    // client (0.54 M of a queue-mode cold start's 8.1 M instructions). Elsewhere (a profile,
    // SSO, a container's role) the default chain applies.
    let in_environment = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
        .iter()
        .all(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()));
    if in_environment {
        return loader.credentials_provider(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        );
    }
    loader
}

/// The SDK's HTTPS client (rustls with aws-lc) trusting `roots`: of the compiled-in set (as
/// PEM, the only form its trust store takes) the Amazon Trust Services roots, or all of it for
/// an HTTPS endpoint set by `AWS_ENDPOINT_URL*`; or the system's store, the SDK's default.
fn https_client(roots: crate::https::TlsRoots) -> SharedHttpClient {
    let builder = || {
        Builder::new().tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
    };
    if roots == crate::https::TlsRoots::System {
        return builder().build_https();
    }
    // AWS's endpoints all chain to Amazon Trust Services; an HTTPS endpoint set by the
    // environment may not (a plain-HTTP one, such as a local stand-in, needs no roots).
    let custom_endpoint = std::env::vars_os().any(|(name, value)| {
        name.to_string_lossy().starts_with("AWS_ENDPOINT_URL")
            && value
                .to_string_lossy()
                .trim()
                .to_ascii_lowercase()
                .starts_with("https://")
    });
    let which = if custom_endpoint {
        crate::https::SdkRoots::All
    } else {
        crate::https::SdkRoots::AmazonTrustServices
    };
    let trust = tls::TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(crate::https::compiled_in_roots_pem(which));
    match tls::TlsContext::builder().with_trust_store(trust).build() {
        Ok(context) => builder().tls_context(context).build_https(),
        // A context with a trust store and no extra names does not fail; if it ever did, the
        // system's store still verifies, and the log says so.
        Err(error) => {
            tracing::warn!(error = %error, "The compiled-in roots could not be set up for AWS; using the system's store.");
            builder().build_https()
        }
    }
}

pub async fn sdk_config() -> aws_config::SdkConfig {
    SDK_CONFIG.get_or_init(|| loader().load()).await.clone()
}

/// An AWS SDK client that can be built from the shared configuration.
pub trait SdkClient: Clone + Send + Sync + 'static {
    fn from_sdk_config(config: &aws_config::SdkConfig) -> Self;
}

impl SdkClient for aws_sdk_secretsmanager::Client {
    fn from_sdk_config(config: &aws_config::SdkConfig) -> Self {
        Self::new(config)
    }
}

impl SdkClient for aws_sdk_sqs::Client {
    fn from_sdk_config(config: &aws_config::SdkConfig) -> Self {
        Self::new(config)
    }
}

impl SdkClient for aws_sdk_dynamodb::Client {
    fn from_sdk_config(config: &aws_config::SdkConfig) -> Self {
        Self::new(config)
    }
}

/// A client built on its first call rather than at start-up. Loading the configuration and
/// building the three clients was most of the function's init (2.45 M of 3.94 M instructions),
/// paid even by cold starts that answer `/health` or refuse a signature without calling AWS.
/// Clones share the one client.
#[derive(Debug)]
pub struct LazyClient<C>(Arc<OnceCell<C>>);

impl<C> Clone for LazyClient<C> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<C: SdkClient> LazyClient<C> {
    /// A client from the environment's configuration (`sdk_config`), built on first use.
    pub fn from_environment() -> Self {
        Self(Arc::new(OnceCell::new()))
    }

    pub async fn get(&self) -> &C {
        self.get_or_build(|| async { C::from_sdk_config(&sdk_config().await) })
            .await
    }

    async fn get_or_build<F: std::future::Future<Output = C>>(
        &self,
        build: impl FnOnce() -> F,
    ) -> &C {
        self.0.get_or_init(build).await
    }
}

/// A client built elsewhere (tests point one at a local endpoint).
impl<C> From<C> for LazyClient<C> {
    fn from(client: C) -> Self {
        Self(Arc::new(OnceCell::new_with(Some(client))))
    }
}

/// The SDK's default HTTPS client (rustls with aws-lc) without its eager start. The SDK builds
/// its TLS connector, which reads and parses every root certificate on the system, as soon as
/// a client is created (`validate_base_client_config`); at start-up that was most of the
/// function's init. Left at the trait's default, the connector is built on the first request,
/// so a cold start that answers without calling AWS never pays for it. (Unlike the SDK's
/// default it reads no HTTP(S)_PROXY variables: Lambda has no proxy.)
#[derive(Debug)]
struct FirstRequestTls(SharedHttpClient);

impl HttpClient for FirstRequestTls {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.0.http_connector(settings, components)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.0.connector_metadata()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl<C> LazyClient<C> {
        fn is_built(&self) -> bool {
            self.0.initialized()
        }
    }

    fn sqs_client() -> aws_sdk_sqs::Client {
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        aws_sdk_sqs::Client::from_conf(config)
    }

    #[tokio::test]
    async fn clients_are_built_once_on_first_use_and_shared_by_clones() {
        let lazy = LazyClient::<aws_sdk_sqs::Client>::from_environment();
        let clone = lazy.clone();
        assert!(!lazy.is_built(), "nothing is built at start-up");
        let mut builds = 0;
        for _ in 0..3 {
            clone
                .get_or_build(|| {
                    builds += 1;
                    async { sqs_client() }
                })
                .await;
        }
        assert_eq!(builds, 1);
        assert!(lazy.is_built(), "a clone shares the client it built");
    }

    #[test]
    fn a_client_built_elsewhere_is_ready() {
        let lazy: LazyClient<_> = sqs_client().into();
        assert!(lazy.is_built());
    }
}

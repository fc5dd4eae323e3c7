//! The shared AWS SDK configuration: region, credentials and endpoints from the environment
//! (`AWS_ENDPOINT_URL*` included, so tests reach a local moto), with explicit timeouts.
//! Loaded once per process: the webhook function builds up to three clients (Secrets Manager,
//! DynamoDB, SQS) at start-up, and they share one configuration and one HTTP client.

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
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(SharedHttpClient::new(FirstRequestTls(
            Builder::new()
                .tls_provider(tls::Provider::Rustls(
                    tls::rustls_provider::CryptoMode::AwsLc,
                ))
                .build_https(),
        )))
        .timeout_config(timeouts())
}

pub async fn sdk_config() -> aws_config::SdkConfig {
    SDK_CONFIG.get_or_init(|| loader().load()).await.clone()
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

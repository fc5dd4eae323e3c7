//! The shared AWS SDK configuration: region, credentials and endpoints from the environment
//! (`AWS_ENDPOINT_URL*` included, so tests reach a local moto), with explicit timeouts.
//! Loaded once per process: the webhook function builds up to three clients (Secrets Manager,
//! DynamoDB, SQS) at start-up, and they share one configuration and one HTTP client.

use std::time::Duration;

use tokio::sync::OnceCell;

static SDK_CONFIG: OnceCell<aws_config::SdkConfig> = OnceCell::const_new();

pub async fn sdk_config() -> aws_config::SdkConfig {
    SDK_CONFIG.get_or_init(load).await.clone()
}

async fn load() -> aws_config::SdkConfig {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(5))
        .build();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts)
        .load()
        .await
}

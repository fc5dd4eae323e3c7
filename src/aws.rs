//! The shared AWS SDK configuration: region, credentials and endpoints from the environment
//! (`AWS_ENDPOINT_URL*` included, so tests reach a local moto), with explicit timeouts.

use std::time::Duration;

pub async fn sdk_config() -> aws_config::SdkConfig {
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

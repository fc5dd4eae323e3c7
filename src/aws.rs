//! The shared AWS SDK configuration: region, credentials and endpoints from the environment
//! (`AWS_ENDPOINT_URL*` included, so tests reach a local moto), with explicit timeouts.

use std::time::Duration;

use aws_config::ConfigLoader;
use aws_config::timeout::TimeoutConfig;

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
    aws_config::defaults(aws_config::BehaviorVersion::latest()).timeout_config(timeouts())
}

pub async fn sdk_config() -> aws_config::SdkConfig {
    loader().load().await
}

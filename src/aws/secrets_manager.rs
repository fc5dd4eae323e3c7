//! The deployment's secret in AWS Secrets Manager.

use crate::aws::LazyClient;
use crate::secret::{AppSecret, SecretError, SecretSource};

/// The secret `secret_id` (its `SecretString`), read with `GetSecretValue`.
#[derive(Debug, Clone)]
pub struct SecretsManager {
    client: LazyClient<aws_sdk_secretsmanager::Client>,
    secret_id: String,
}

impl SecretsManager {
    pub fn new(
        client: impl Into<LazyClient<aws_sdk_secretsmanager::Client>>,
        secret_id: impl Into<String>,
    ) -> Self {
        Self {
            client: client.into(),
            secret_id: secret_id.into(),
        }
    }
}

#[async_trait::async_trait]
impl SecretSource for SecretsManager {
    async fn fetch(&self) -> Result<AppSecret, SecretError> {
        let output = self
            .client
            .get()
            .await
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| classify_sdk_error(&self.secret_id, e))?;
        let json = output
            .secret_string()
            .ok_or_else(|| SecretError::Malformed("the secret has no SecretString".into()))?;
        AppSecret::from_json(json)
    }
}

fn classify_sdk_error<E, R>(
    secret_id: &str,
    error: aws_sdk_secretsmanager::error::SdkError<E, R>,
) -> SecretError
where
    E: aws_sdk_secretsmanager::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_secretsmanager::error::SdkError;
    match &error {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("unknown");
            if code == "ResourceNotFoundException" {
                SecretError::NotFound(secret_id.to_string())
            } else {
                SecretError::Unavailable(format!("{code} for {secret_id}"))
            }
        }
        SdkError::TimeoutError(_) => SecretError::Unavailable("timed out".into()),
        SdkError::DispatchFailure(_) => SecretError::Unavailable("connection failed".into()),
        _ => SecretError::Unavailable(
            aws_sdk_secretsmanager::error::DisplayErrorContext(&error).to_string(),
        ),
    }
}

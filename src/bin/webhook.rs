//! The `webhook` Lambda function: authenticate, parse, map, deliver.

use ac_webhook_sync::edge::{WebhookApp, lambda};
use ac_webhook_sync::settings::Settings;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ac_webhook_sync::logging::init();
    let settings = Settings::from_env()?;
    let app = WebhookApp::from_settings(&settings)?;
    lambda::serve(app).await
}

//! The `webhook` Lambda function: authenticate, parse, map, deliver.

use ac_webhook_sync::aws::lambda::http;
use ac_webhook_sync::functions::webhook::WebhookApp;
use ac_webhook_sync::settings::Settings;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ac_webhook_sync::aws::logging::init();
    let settings = Settings::from_env()?;
    let app = WebhookApp::from_settings(&settings)?;
    http::serve_webhook(app).await
}

//! The `import-callback` Lambda function: settles bulk imports when ActiveCampaign reports them.

use ac_webhook_sync::aws::lambda::http;
use ac_webhook_sync::functions::import_callback::CallbackApp;
use ac_webhook_sync::settings::Settings;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ac_webhook_sync::aws::logging::init();
    let settings = Settings::from_env()?;
    let app = CallbackApp::from_settings(&settings)?;
    http::serve_callback(app).await
}

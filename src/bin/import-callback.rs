//! The `import-callback` Lambda function: settles bulk imports when ActiveCampaign reports them.

use ac_webhook_sync::imports::callback::{self, CallbackApp};
use ac_webhook_sync::settings::Settings;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ac_webhook_sync::logging::init();
    let settings = Settings::from_env()?;
    let app = CallbackApp::from_settings(&settings)?;
    callback::serve(app).await
}

//! The `webhook` Lambda function: authenticate, parse, map, deliver.

use ac_webhook_sync::aws::lambda::http;
use ac_webhook_sync::functions::webhook::WebhookApp;
use ac_webhook_sync::settings::Settings;

// One thread: Lambda hands a container one request at a time, and at the template's 128 MB a
// fraction of one vCPU. Worker threads only added their start and cross-thread wake-ups: the
// queue mode's first response took 8% longer on the multi-threaded runtime.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    ac_webhook_sync::aws::logging::init();
    let settings = Settings::from_env()?;
    let app = WebhookApp::from_settings(&settings)?;
    http::serve_webhook(app).await
}

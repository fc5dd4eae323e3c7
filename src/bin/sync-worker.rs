//! The `sync-worker` Lambda function: drains the contact queue into ActiveCampaign.

use ac_webhook_sync::aws::lambda::sqs_event;
use ac_webhook_sync::functions::sync_worker::SyncWorker;
use ac_webhook_sync::settings::Settings;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ac_webhook_sync::aws::logging::init();
    let settings = Settings::from_env()?;
    let worker = SyncWorker::from_settings(&settings)?;
    sqs_event::serve(worker).await
}

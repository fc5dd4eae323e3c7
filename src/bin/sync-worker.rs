//! The `sync-worker` Lambda function: drains the contact queue into ActiveCampaign.

use ac_webhook_sync::settings::Settings;
use ac_webhook_sync::worker::{SyncWorker, lambda};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ac_webhook_sync::logging::init();
    let settings = Settings::from_env()?;
    let worker = SyncWorker::from_settings(&settings)?;
    lambda::serve(worker).await
}

//! The `import-reconciler` Lambda function: every few minutes, settles the bulk imports whose
//! callback never did.

use ac_webhook_sync::aws::lambda::scheduled;
use ac_webhook_sync::functions::import_reconciler::Reconciler;
use ac_webhook_sync::settings::Settings;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ac_webhook_sync::aws::logging::init();
    let settings = Settings::from_env()?;
    let reconciler = Reconciler::from_settings(&settings)?;
    scheduled::serve(reconciler).await
}

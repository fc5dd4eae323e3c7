//! The `lambda_runtime` adapter of the import reconciler.

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use crate::functions::import_reconciler::Reconciler;

/// Serves the reconciler until the runtime stops: any scheduled event in, the run's report
/// out.
pub async fn serve(reconciler: Reconciler) -> Result<(), lambda_runtime::Error> {
    let reconciler = std::sync::Arc::new(reconciler);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<Value>| {
            let reconciler = reconciler.clone();
            async move {
                let budget = crate::deadline::remaining_budget(
                    event.context.deadline,
                    std::time::SystemTime::now(),
                    Duration::from_secs(50),
                    Duration::from_secs(3),
                    Duration::from_secs(850),
                );
                let report = Box::pin(reconciler.run(Instant::now() + budget)).await;
                Ok::<_, lambda_runtime::Error>(report.to_json())
            }
        },
    ))
    .await
}

//! The `lambda_runtime` adapter of the sync-worker: SQS events in, partial batch failures out.

use std::sync::Arc;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::{LambdaEvent, service_fn};

use crate::functions::sync_worker::{QueueRecord, SyncWorker};

/// Serves the worker until the runtime stops.
pub async fn serve(worker: SyncWorker) -> Result<(), lambda_runtime::Error> {
    let worker = Arc::new(worker);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let worker = worker.clone();
        async move { Ok::<_, lambda_runtime::Error>(handle(&worker, event).await) }
    }))
    .await
}

pub async fn handle(worker: &SyncWorker, event: LambdaEvent<SqsEvent>) -> SqsBatchResponse {
    let deadline = worker_deadline(event.context.deadline, worker.invocation_budget());
    let records = event.payload.records.into_iter().map(to_record).collect();
    // Boxed: the worker's future is deep enough to overflow rustc's layout query depth when
    // the runtime's future is laid out around it (seen on fresh builds only).
    let report = Box::pin(worker.process(records, deadline)).await;
    let mut response = SqsBatchResponse::default();
    for message_id in report.failed {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = message_id;
        response.batch_item_failures.push(failure);
    }
    response
}

pub fn to_record(message: SqsMessage) -> QueueRecord {
    QueueRecord {
        receive_count: message
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|c| c.parse().ok())
            .unwrap_or(1),
        message_id: message.message_id.unwrap_or_default(),
        receipt_handle: message.receipt_handle.unwrap_or_default(),
        body: message.body.unwrap_or_default(),
    }
}

/// The batch's deadline: `INVOCATION_BUDGET_MS` (or its default), and never later than the
/// runtime's deadline less a margin for handing the batch back.
fn worker_deadline(runtime_deadline_ms: u64, budget: std::time::Duration) -> tokio::time::Instant {
    let budget = crate::deadline::remaining_budget(
        runtime_deadline_ms,
        std::time::SystemTime::now(),
        budget,
        std::time::Duration::from_secs(2),
        budget,
    );
    tokio::time::Instant::now() + budget
}

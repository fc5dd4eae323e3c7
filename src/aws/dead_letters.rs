//! The dead-letter queue for an operator (`ac-webhook-sync dead-letters`): what is in it
//! (reason, route, masked email, age), and moving messages back to the contact queue once the
//! cause is fixed. Listing hides each message it has seen while it goes on and lets them all
//! go at the end, so nothing is taken out; a redrive sends a message's body (without its dead-letter attributes) to the
//! contact queue first and deletes it from the dead-letter queue only once that send
//! succeeded: a failure part-way leaves a message in both queues (the worker's deduplication
//! makes that one sync), never in neither.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use serde::Serialize;
use thiserror::Error;

use crate::delivery::message::QueuedLookup;
use crate::delivery::{QueuedBatch, QueuedContact, REASON_ATTRIBUTE, ROUTE_ATTRIBUTE};
use crate::redact::mask_email;

/// How many messages one receive asks for (SQS's largest).
const RECEIVE_BATCH: i32 = 10;
/// How long a message seen by a listing or a redrive stays hidden before it is let go.
const HIDDEN_WHILE_LISTED: i32 = 30;

/// Makes received messages visible again at once (ten a request).
async fn release(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    handles: Vec<String>,
) -> Result<(), DeadLetterError> {
    for (n, part) in handles.chunks(10).enumerate() {
        let mut request = client
            .change_message_visibility_batch()
            .queue_url(queue_url);
        for (i, handle) in part.iter().enumerate() {
            let entry = aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry::builder()
                .id(format!("m{n}-{i}"))
                .receipt_handle(handle)
                .visibility_timeout(0)
                .build()
                .map_err(|e| sqs_error("ChangeMessageVisibilityBatch", queue_url, e))?;
            request = request.entries(entry);
        }
        request
            .send()
            .await
            .map_err(|e| sqs_error("ChangeMessageVisibilityBatch", queue_url, e))?;
    }
    Ok(())
}

#[derive(Debug, Error)]
pub enum DeadLetterError {
    #[error("SQS {action} on {queue} failed: {reason}")]
    Sqs {
        action: &'static str,
        queue: String,
        reason: String,
    },
}

fn sqs_error(action: &'static str, queue: &str, error: impl std::error::Error) -> DeadLetterError {
    DeadLetterError::Sqs {
        action,
        queue: queue.to_string(),
        reason: aws_sdk_sqs::error::DisplayErrorContext(error).to_string(),
    }
}

/// An SQS client from the environment's AWS configuration (`AWS_ENDPOINT_URL` included).
pub async fn client_from_environment() -> aws_sdk_sqs::Client {
    crate::aws::LazyClient::<aws_sdk_sqs::Client>::from_environment()
        .get()
        .await
        .clone()
}

/// One message in the dead-letter queue, as an operator reads it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetter {
    pub message_id: String,
    /// Why it was dead-lettered (the worker's or the webhook function's reason), or that SQS
    /// moved it after its last receive.
    pub reason: String,
    pub route: Option<String>,
    /// The contact's email, masked; or what it holds otherwise (`a lookup of order 100`).
    pub contact: String,
    /// How long it has been in the queue system (since it was first sent to this queue).
    pub age_secs: u64,
    /// How many times it was received (listing included).
    pub receive_count: u32,
}

/// Every message in `queue_url` (up to `max`), without taking any out of it. Each is hidden
/// while the listing goes on (so the next receives find the others: SQS answers from a sample
/// of its servers), then let go at once; a listing that is stopped lets them go by themselves
/// after [`HIDDEN_WHILE_LISTED`] seconds.
pub async fn list(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    max: usize,
) -> Result<Vec<DeadLetter>, DeadLetterError> {
    let mut found: BTreeMap<String, DeadLetter> = BTreeMap::new();
    let mut handles = Vec::new();
    let mut empty_in_a_row = 0;
    while found.len() < max && empty_in_a_row < 3 {
        let answer = client
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(RECEIVE_BATCH)
            .visibility_timeout(HIDDEN_WHILE_LISTED)
            .wait_time_seconds(0)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(|e| sqs_error("ReceiveMessage", queue_url, e))?;
        let messages = answer.messages.unwrap_or_default();
        let mut new = 0;
        for message in messages {
            let Some(id) = message.message_id.clone() else {
                continue;
            };
            if let Some(handle) = message.receipt_handle.clone() {
                handles.push(handle);
            }
            if found.contains_key(&id) {
                continue;
            }
            new += 1;
            found.insert(id.clone(), read(id, &message));
        }
        empty_in_a_row = if new == 0 { empty_in_a_row + 1 } else { 0 };
    }
    release(client, queue_url, handles).await?;
    let mut letters: Vec<DeadLetter> = found.into_values().collect();
    letters.sort_by_key(|l| std::cmp::Reverse(l.age_secs));
    letters.truncate(max);
    Ok(letters)
}

fn read(message_id: String, message: &aws_sdk_sqs::types::Message) -> DeadLetter {
    let attribute = |name: &str| {
        message
            .message_attributes
            .as_ref()
            .and_then(|a| a.get(name))
            .and_then(|v| v.string_value.clone())
    };
    let system = |name: MessageSystemAttributeName| {
        message
            .attributes
            .as_ref()
            .and_then(|a| a.get(&name))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let body = message.body.as_deref().unwrap_or_default();
    let sent_ms = system(MessageSystemAttributeName::SentTimestamp).unwrap_or(0);
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let (route, contact) = describe(body);
    DeadLetter {
        message_id,
        reason: attribute(REASON_ATTRIBUTE).unwrap_or_else(|| {
            "no reason recorded: SQS moved it after its last receive (the worker did not answer)"
                .into()
        }),
        route: attribute(ROUTE_ATTRIBUTE).or(route),
        contact,
        age_secs: Duration::from_millis(now_ms.saturating_sub(sent_ms)).as_secs(),
        receive_count: system(MessageSystemAttributeName::ApproximateReceiveCount).unwrap_or(0)
            as u32,
    }
}

/// The route and what a message holds, read from its body.
fn describe(body: &str) -> (Option<String>, String) {
    if QueuedLookup::is_lookup(body)
        && let Ok(lookup) = QueuedLookup::from_json(body)
    {
        let what = format!(
            "a lookup of {} {} ({})",
            lookup.lookup.object,
            lookup.lookup.id,
            lookup.lookup.api.name()
        );
        return (Some(lookup.route), what);
    }
    if QueuedBatch::is_batch(body)
        && let Ok(batch) = QueuedBatch::from_json(body)
    {
        let what = format!("a batch chunk of {} contacts", batch.contacts.len());
        return (Some(batch.route), what);
    }
    match QueuedContact::from_json(body) {
        Ok(message) => (Some(message.route), mask_email(&message.contact.email)),
        Err(_) => (None, "a body this version cannot read".into()),
    }
}

/// What a redrive did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Redriven {
    /// Message ids moved back (their new ids are the contact queue's).
    pub moved: Vec<String>,
    /// Ids asked for that were not found in the dead-letter queue.
    pub not_found: Vec<String>,
}

/// Moves messages from `from_url` back to `to_url`: those in `only`, or every one.
pub async fn redrive(
    client: &aws_sdk_sqs::Client,
    from_url: &str,
    to_url: &str,
    only: Option<&[String]>,
) -> Result<Redriven, DeadLetterError> {
    let mut done = Redriven::default();
    let mut seen = std::collections::BTreeSet::new();
    let mut left_alone = Vec::new();
    let mut empty_in_a_row = 0;
    // Received messages stay hidden while the redrive goes on: those it moves are deleted, the
    // others let go at the end.
    while empty_in_a_row < 3 {
        let answer = client
            .receive_message()
            .queue_url(from_url)
            .max_number_of_messages(RECEIVE_BATCH)
            .visibility_timeout(60)
            .wait_time_seconds(0)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| sqs_error("ReceiveMessage", from_url, e))?;
        let messages = answer.messages.unwrap_or_default();
        let mut new = 0;
        for message in messages {
            let (Some(id), Some(handle)) = (message.message_id.clone(), message.receipt_handle)
            else {
                continue;
            };
            let first_time = seen.insert(id.clone());
            if first_time {
                new += 1;
            }
            let wanted = first_time && only.is_none_or(|ids| ids.contains(&id));
            if !wanted {
                left_alone.push(handle);
                continue;
            }
            client
                .send_message()
                .queue_url(to_url)
                .message_body(message.body.unwrap_or_default())
                .send()
                .await
                .map_err(|e| sqs_error("SendMessage", to_url, e))?;
            client
                .delete_message()
                .queue_url(from_url)
                .receipt_handle(&handle)
                .send()
                .await
                .map_err(|e| sqs_error("DeleteMessage", from_url, e))?;
            done.moved.push(id);
        }
        empty_in_a_row = if new == 0 { empty_in_a_row + 1 } else { 0 };
        if only.is_some_and(|ids| ids.iter().all(|id| seen.contains(id))) {
            break;
        }
    }
    release(client, from_url, left_alone).await?;
    if let Some(ids) = only {
        done.not_found = ids
            .iter()
            .filter(|id| !seen.contains(*id))
            .cloned()
            .collect();
    }
    Ok(done)
}

/// How many messages a queue holds (visible, and in flight).
pub async fn depth(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
) -> Result<(u64, u64), DeadLetterError> {
    let answer = client
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .map_err(|e| sqs_error("GetQueueAttributes", queue_url, e))?;
    let get = |name: QueueAttributeName| {
        answer
            .attributes
            .as_ref()
            .and_then(|a| a.get(&name))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok((
        get(QueueAttributeName::ApproximateNumberOfMessages),
        get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    ))
}

//! One suite over every implementation of the core's seams, as `object_store` runs one over
//! every backend: the import store in memory and on DynamoDB (moto), the queue in memory and
//! on SQS (moto). Tests and local runs use the memory ones, so they must keep the same rules.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use ac_webhook_sync::activecampaign::ContactSync;
use ac_webhook_sync::delivery::idempotency::Begun;
use ac_webhook_sync::delivery::import_store::SUBMITTED;
use ac_webhook_sync::delivery::{
    Claim, ContactQueue, IdempotencyStore, ImportRecord, ImportStore, MemoryIdempotencyStore,
    MemoryImportStore, MemoryQueue,
};
use serde_json::json;
use support::moto::{Moto, import_table, sqs_queue};
use tokio::time::Instant;

fn record(reference: &str, contacts: usize) -> ImportRecord {
    ImportRecord {
        reference: reference.into(),
        batch_id: format!("batch-{reference}"),
        route: "batch".into(),
        contacts: (0..contacts)
            .map(|i| ContactSync {
                email: format!("c{i}@example.com"),
                ..ContactSync::default()
            })
            .collect(),
        status: SUBMITTED.into(),
        generation: 1,
        exclude_automations: true,
        requeued_upto: 0,
    }
}

/// The rules every import store keeps.
async fn import_store_rules(store: &dyn ImportStore) {
    assert_eq!(
        store.get("r1").await.unwrap(),
        None,
        "nothing before it is recorded"
    );
    store.record(&record("r1", 3)).await.unwrap();
    assert_eq!(
        store.get("r1").await.unwrap(),
        Some(record("r1", 3)),
        "read back whole"
    );

    // One settler at a time; the second is told for how long.
    let lease = Duration::from_secs(30);
    let Claim::Claimed(claimed) = store.claim("r1", lease).await.unwrap() else {
        panic!("the first claim takes the record");
    };
    assert_eq!(claimed, record("r1", 3));
    match store.claim("r1", lease).await.unwrap() {
        Claim::Busy { for_secs } => assert!((28..=30).contains(&for_secs), "{for_secs}"),
        other => panic!("a second settler must wait, got {other:?}"),
    }
    // A requeue that stopped part-way keeps its position and frees the record at once.
    store.requeue_progress("r1", 2).await.unwrap();
    let Claim::Claimed(again) = store.claim("r1", lease).await.unwrap() else {
        panic!("given up, the record is free");
    };
    assert_eq!(again.requeued_upto, 2);

    // Open records, oldest first, and only open ones.
    store.record(&record("r2", 1)).await.unwrap();
    let open = store.open_records(Duration::ZERO, 10).await.unwrap();
    let refs: BTreeSet<String> = open.iter().map(|(r, _)| r.reference.clone()).collect();
    assert_eq!(refs, BTreeSet::from(["r1".to_string(), "r2".to_string()]));
    assert!(open.windows(2).all(|w| w[0].1 <= w[1].1), "oldest first");
    assert_eq!(
        store.open_records(Duration::ZERO, 1).await.unwrap().len(),
        1
    );
    assert!(
        store
            .open_records(Duration::from_secs(3600), 10)
            .await
            .unwrap()
            .is_empty(),
        "none is an hour old"
    );

    // The first outcome wins; a settled record cannot be claimed.
    assert!(store.finish("r1", "completed", 3, 0).await.unwrap());
    assert!(
        !store.finish("r1", "failed", 0, 3).await.unwrap(),
        "repeats change nothing"
    );
    assert_eq!(store.get("r1").await.unwrap().unwrap().status, "completed");
    assert_eq!(store.claim("r1", lease).await.unwrap(), Claim::Settled);
    assert_eq!(store.claim("unknown", lease).await.unwrap(), Claim::Settled);
    assert!(!store.finish("unknown", "completed", 0, 0).await.unwrap());
    let open = store.open_records(Duration::ZERO, 10).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].0.reference, "r2");
    // Progress on a settled record changes nothing.
    store.requeue_progress("r1", 3).await.unwrap();
    assert_eq!(store.get("r1").await.unwrap().unwrap().requeued_upto, 2);

    // A batch's first answer, recalled by its digest.
    let answer = json!({"status": "batch", "rows": 3});
    assert_eq!(store.recall_answer("d1").await.unwrap(), None);
    store.remember_answer("d1", &answer).await.unwrap();
    assert_eq!(store.recall_answer("d1").await.unwrap(), Some(answer));
    assert_eq!(store.recall_answer("d2").await.unwrap(), None);
}

#[tokio::test]
async fn the_memory_import_store_keeps_the_rules() {
    import_store_rules(&MemoryImportStore::new()).await;
}

#[tokio::test]
async fn the_dynamodb_import_store_keeps_the_rules() {
    let moto = Moto::start();
    let table = import_table(&moto.endpoint).await;
    import_store_rules(table.as_ref()).await;
}

/// The rules every queue keeps: what it says it sent is there, once.
async fn queue_rules(queue: &dyn ContactQueue, read_back: impl AsyncFnOnce() -> Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let id = queue
        .send_body("one".into(), &[("reason", "test")], deadline)
        .await
        .unwrap();
    assert!(!id.is_empty(), "a message id");
    let bodies: Vec<String> = (0..25).map(|i| format!("many-{i}")).collect();
    assert_eq!(queue.send_many(bodies.clone(), &[], deadline).await, Ok(25));
    let mut expected = bodies;
    expected.push("one".into());
    expected.sort();
    let mut got = read_back().await;
    got.sort();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn the_memory_queue_keeps_the_rules() {
    let queue = MemoryQueue::new();
    queue_rules(&queue, async || {
        queue.messages().into_iter().map(|m| m.body).collect()
    })
    .await;
    assert_eq!(
        queue.messages()[0].attributes,
        [("reason".to_string(), "test".to_string())]
    );
}

#[tokio::test]
async fn the_sqs_queue_keeps_the_rules() {
    let moto = Moto::start();
    let (client, url) = support::moto::sqs(&moto.endpoint, "contacts").await;
    let queue = sqs_queue(client.clone(), &url);
    queue_rules(queue.as_ref(), async || {
        let mut bodies = Vec::new();
        loop {
            let received = client
                .receive_message()
                .queue_url(&url)
                .max_number_of_messages(10)
                .send()
                .await
                .unwrap();
            if received.messages().is_empty() {
                return bodies;
            }
            for message in received.messages() {
                bodies.push(message.body().unwrap_or_default().to_string());
                client
                    .delete_message()
                    .queue_url(&url)
                    .receipt_handle(message.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    })
    .await;
}

/// The rules every idempotency store keeps. Waits (real seconds) for leases and windows.
async fn idempotency_rules(store: &dyn IdempotencyStore) {
    let lease = Duration::from_secs(30);
    assert_eq!(store.begin("k1", "a", lease).await.unwrap(), Begun::Started);
    match store.begin("k1", "b", lease).await.unwrap() {
        Begun::InProgress { retry_after } => {
            assert!(
                (28..=30).contains(&retry_after.as_secs()),
                "{retry_after:?}"
            )
        }
        other => panic!("a second claim must wait, got {other:?}"),
    }
    // Only the owner finishes or gives the claim up.
    store.abandon("k1", "b").await.unwrap();
    store
        .finish(
            "k1",
            "b",
            &json!({"status": "not b's"}),
            Duration::from_secs(3600),
        )
        .await
        .unwrap();
    assert!(matches!(
        store.begin("k1", "c", lease).await.unwrap(),
        Begun::InProgress { .. }
    ));
    let answer = json!({"status": "synced", "subscriber_id": 7});
    store
        .finish("k1", "a", &answer, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(
        store.begin("k1", "c", lease).await.unwrap(),
        Begun::Done(answer.clone())
    );
    store.abandon("k1", "a").await.unwrap();
    assert_eq!(
        store.begin("k1", "c", lease).await.unwrap(),
        Begun::Done(answer),
        "a done claim is not given up"
    );

    // A failed delivery gives its claim up: the retry starts at once.
    assert_eq!(store.begin("k2", "a", lease).await.unwrap(), Begun::Started);
    store.abandon("k2", "a").await.unwrap();
    assert_eq!(store.begin("k2", "b", lease).await.unwrap(), Begun::Started);

    // A lease and a window end; a lapsed owner cannot undo its successor's claim.
    let short = Duration::from_secs(1);
    assert_eq!(store.begin("k3", "a", short).await.unwrap(), Begun::Started);
    assert_eq!(store.begin("k4", "a", short).await.unwrap(), Begun::Started);
    store
        .finish("k4", "a", &json!({"status": "queued"}), short)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        store.begin("k3", "b", lease).await.unwrap(),
        Begun::Started,
        "lease over"
    );
    store.abandon("k3", "a").await.unwrap();
    assert!(
        matches!(
            store.begin("k3", "c", lease).await.unwrap(),
            Begun::InProgress { .. }
        ),
        "b still holds it"
    );
    assert_eq!(
        store.begin("k4", "b", lease).await.unwrap(),
        Begun::Started,
        "window over"
    );
}

#[tokio::test]
async fn the_memory_idempotency_store_keeps_the_rules() {
    idempotency_rules(&MemoryIdempotencyStore::new()).await;
}

#[tokio::test]
async fn the_dynamodb_idempotency_store_keeps_the_rules() {
    let moto = Moto::start();
    let table = support::moto::idempotency_table(&moto.endpoint).await;
    idempotency_rules(table.as_ref()).await;
}

//! The operator's view of the dead-letter queue, on a real SQS-compatible server (moto):
//! listing takes nothing out and shows each message's reason, route, masked email and age;
//! a redrive moves the chosen messages (or all) back to the contact queue, each once.

mod support;

use std::time::Duration;

use ac_webhook_sync::activecampaign::ContactSync;
use ac_webhook_sync::aws::dead_letters::{depth, list, redrive};
use ac_webhook_sync::delivery::{QueuedContact, REASON_ATTRIBUTE, ROUTE_ATTRIBUTE};
use support::moto::{Moto, sqs_client};

async fn create(client: &aws_sdk_sqs::Client, name: &str) -> String {
    client
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn dead_letters_are_listed_without_being_taken_and_redriven_once() {
    let moto = Moto::start();
    let client = sqs_client(&moto.endpoint);
    let queue = create(&client, "contacts").await;
    let dlq = create(&client, "contacts-dlq").await;
    let dead = support::moto::sqs_queue(client.clone(), &dlq);
    let deadline = || tokio::time::Instant::now() + Duration::from_secs(5);
    // As the worker dead-letters: the message's body, its reason and route as attributes.
    let mut ids = Vec::new();
    for (email, reason) in [
        ("ada.lovelace@example.com", "refused: invalid email"),
        (
            "grace.hopper@example.com",
            "ActiveCampaign unavailable after 5 receives: HTTP 503",
        ),
    ] {
        let message = QueuedContact::new(
            "shop",
            None,
            ContactSync {
                email: email.into(),
                ..Default::default()
            },
        );
        let id = dead
            .send_body(
                message.to_json(),
                &[(REASON_ATTRIBUTE, reason), (ROUTE_ATTRIBUTE, "shop")],
                deadline(),
            )
            .await
            .unwrap();
        ids.push(id);
    }
    // One that SQS itself moved (no attributes).
    let bare = QueuedContact::new(
        "newsletter",
        None,
        ContactSync {
            email: "katherine@example.com".into(),
            ..Default::default()
        },
    );
    client
        .send_message()
        .queue_url(&dlq)
        .message_body(bare.to_json())
        .send()
        .await
        .unwrap();

    let listed = list(&client, &dlq, 100).await.unwrap();
    assert_eq!(listed.len(), 3, "{listed:?}");
    let ada = listed.iter().find(|l| l.message_id == ids[0]).unwrap();
    assert_eq!(ada.reason, "refused: invalid email");
    assert_eq!(ada.route.as_deref(), Some("shop"));
    assert!(
        !ada.contact.contains("ada.lovelace"),
        "masked: {}",
        ada.contact
    );
    assert!(ada.contact.ends_with("@example.com"), "{}", ada.contact);
    let kat = listed
        .iter()
        .find(|l| l.route.as_deref() == Some("newsletter"))
        .unwrap();
    assert!(kat.reason.contains("SQS moved it"), "{}", kat.reason);
    // Listing again finds them all: nothing was taken.
    assert_eq!(list(&client, &dlq, 100).await.unwrap().len(), 3);

    // The refused one is fixed: only it goes back.
    let moved = redrive(&client, &dlq, &queue, Some(std::slice::from_ref(&ids[0])))
        .await
        .unwrap();
    assert_eq!(moved.moved, [ids[0].clone()]);
    assert!(moved.not_found.is_empty());
    assert_eq!(depth(&client, &queue).await.unwrap(), (1, 0));
    let left = list(&client, &dlq, 100).await.unwrap();
    assert_eq!(left.len(), 2);
    assert!(left.iter().all(|l| l.message_id != ids[0]));
    // The body went back as it was, without the dead-letter attributes.
    let back = client
        .receive_message()
        .queue_url(&queue)
        .message_attribute_names("All")
        .send()
        .await
        .unwrap()
        .messages
        .unwrap();
    assert_eq!(
        QueuedContact::from_json(back[0].body().unwrap())
            .unwrap()
            .contact
            .email,
        "ada.lovelace@example.com"
    );
    assert!(back[0].message_attributes.is_none());

    // An id that is not there is named, and what the search received is let go at once:
    // then all the rest go back.
    let none = redrive(&client, &dlq, &queue, Some(&["no-such-id".to_string()]))
        .await
        .unwrap();
    assert_eq!(none.not_found, ["no-such-id"]);
    assert!(none.moved.is_empty());
    let all = redrive(&client, &dlq, &queue, None).await.unwrap();
    assert_eq!(all.moved.len(), 2);
    assert!(list(&client, &dlq, 100).await.unwrap().is_empty());
}

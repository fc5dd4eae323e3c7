//! Every events/ file, driven through the Lambda adapter and the whole pipeline against a
//! fake ActiveCampaign: the status, the outcome and the exact `contact_sync` fields sent.

mod support;

use std::collections::BTreeSet;

use serde_json::json;
use support::*;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

struct Expect {
    status: u16,
    outcome: Option<&'static str>,
    sent: Option<&'static [(&'static str, &'static str)]>,
}

const fn ok(outcome: &'static str) -> Expect {
    Expect {
        status: 200,
        outcome: Some(outcome),
        sent: None,
    }
}
const fn synced(sent: &'static [(&'static str, &'static str)]) -> Expect {
    Expect {
        status: 200,
        outcome: Some("synced"),
        sent: Some(sent),
    }
}
const fn status(status: u16) -> Expect {
    Expect {
        status,
        outcome: None,
        sent: None,
    }
}

const ADA: &[(&str, &str)] = &[
    ("email", "ada.lovelace@example.com"),
    ("first_name", "Ada"),
    ("last_name", "Lovelace"),
    ("phone", "+44 20 7946 0000"),
    ("customer_acct_name", "Analytical Engines"),
];
const JON: &[(&str, &str)] = &[
    ("email", "jon@example.com"),
    ("first_name", "Jon"),
    ("last_name", "Snow"),
    ("phone", "+16135550135"),
    ("customer_acct_name", "Night's Watch"),
    ("ip4", "198.51.100.23"),
];
const RENEE: &[(&str, &str)] = &[
    ("email", "renee.doe@example.com"),
    ("first_name", "Renée"),
    ("last_name", "Doe"),
    ("phone", "(555) 555-5555"),
    ("customer_acct_name", "Doe & Co"),
    ("ip4", "192.0.2.44"),
];
const JENNY: &[(&str, &str)] = &[
    ("email", "jennifer.maxwell@example.com"),
    ("first_name", "Jenny"),
    ("last_name", "Rosen"),
    ("phone", "+15555550123"),
];
const ZOE: &[(&str, &str)] = &[
    ("email", "zoe.washburne@example.com"),
    ("first_name", "Zoe"),
    ("last_name", "Washburne"),
    ("phone", "15550000000"),
    ("customer_acct_name", "Serenity Charters"),
];
const INARA: &[(&str, &str)] = &[
    ("email", "inara.serra@example.com"),
    ("first_name", "Inara"),
    ("last_name", "Serra"),
    ("phone", "+1 617 555 0134"),
    ("customer_acct_name", "Companion Guild"),
];
const SHEPHERD: &[(&str, &str)] = &[
    ("email", "shepherd.book@example.com"),
    ("first_name", "Derrial"),
    ("last_name", "Book"),
    ("phone", "+1 555 0199"),
    ("customer_acct_name", "Southdown Abbey"),
];

fn expectation(name: &str) -> Option<Expect> {
    Some(match name {
        "form-urlencoded" | "alb-form-urlencoded" => synced(ADA),
        "form-multipart" => synced(&[
            ("email", "grace@example.com"),
            ("first_name", "Grace"),
            ("last_name", "Brewster Hopper"),
            ("phone", "+1 212 555 0101"),
            ("customer_acct_name", "US Navy"),
        ]),
        "form-json" => synced(&[
            ("email", "katherine@example.com"),
            ("first_name", "Katherine"),
            ("last_name", "Johnson"),
            ("phone", "+1 757 555 0199"),
            ("customer_acct_name", "NASA"),
        ]),
        "form-no-email" => ok("skipped"),
        "form-wrong-token" | "form-missing-token" => status(401),
        "form-malformed-json" => status(400),
        "form-unsupported-type" => status(415),
        // A filled honeypot is answered as the success is (303), and nothing is sent.
        "newsletter-honeypot" => status(303),
        "newsletter-other-origin" | "newsletter-no-captcha" => status(403),
        "newsletter-signup" => Expect {
            status: 303,
            outcome: None,
            sent: Some(&[
                ("email", "mary@example.com"),
                ("first_name", "Mary"),
                ("last_name", "Jackson"),
                ("tags", "newsletter, source:footer"),
                ("field[%SIGNUP_PAGE%,0]", "/blog/post"),
                ("field[3,0]", "||rockets||math||"),
                ("p[1]", "1"),
                ("status[1]", "1"),
                ("instantresponders[1]", "1"),
                ("lastmessage[1]", "0"),
                ("form", "1"),
            ]),
        },
        "wix-contact-created" | "wix-contact-updated" => synced(&[
            ("email", "amelia.earhart@example.com"),
            ("first_name", "Amelia"),
            ("last_name", "Earhart"),
            ("phone", "+1 555 0137"),
            ("customer_acct_name", "Ninety-Nines"),
        ]),
        "wix-no-email" => ok("skipped"),
        // The body is the signature: claims changed after signing, or no JWT at all.
        "wix-bad-signature" | "wix-not-a-jwt" => status(401),
        "wixautomations-form-submission" => synced(&[
            ("email", "bessie.coleman@example.com"),
            ("first_name", "Bessie"),
            ("last_name", "Coleman"),
            ("phone", "+1 555 0122"),
        ]),
        "wixautomations-wrong-token" => status(401),
        // Ids only: the order is looked up in BigCommerce's API (faked below).
        "bigcommerce-order-created" => synced(&[
            ("email", "katherine.coleman@example.com"),
            ("first_name", "Katherine"),
            ("last_name", "Coleman"),
            ("phone", "+1 757 555 0164"),
            ("customer_acct_name", "Langley Aeronautics"),
            ("ip4", "198.51.100.42"),
        ]),
        "bigcommerce-order-missing" | "bigcommerce-product-updated" => ok("ignored"),
        "bigcommerce-bad-signature" => status(401),
        "squarespace-order-create" => synced(&[
            ("email", "mae.carol@example.com"),
            ("first_name", "Mae"),
            ("last_name", "Carol"),
            ("phone", "+1 281 555 0190"),
        ]),
        "squarespace-bad-signature" => status(401),
        // The customer by id, looked up in Stripe's API.
        "stripe-subscription-created" => synced(&[
            ("email", "dorothy.hodgkin@example.com"),
            ("first_name", "Dorothy"),
            ("last_name", "Hodgkin"),
            ("phone", "+44 1865 555 0100"),
            ("customer_acct_name", "Somerville Labs"),
        ]),
        "shopify-orders-create" | "shopify-orders-paid" | "rest-shopify-orders-paid" => synced(JON),
        "shopify-customers-create" => synced(&[
            ("email", "bob@example.com"),
            ("first_name", "Bob"),
            ("last_name", "Norman"),
            ("phone", "+16136120707"),
            ("customer_acct_name", "Norman Plumbing"),
        ]),
        "shopify-checkouts-create" => synced(&[
            ("email", "abandoned@example.com"),
            ("first_name", "Anne"),
            ("last_name", "Bonny"),
            ("phone", "+15555550100"),
            ("customer_acct_name", "Revenge"),
        ]),
        "shopify-products-update" => ok("ignored"),
        "shopify-bad-signature" => status(401),
        "shopify-malformed" => status(400),
        "shop-orders-paid" => synced(&[
            ("email", "jon@example.com"),
            ("first_name", "Jon"),
            ("last_name", "Snow"),
            ("phone", "+1 613 555 0135"),
            ("customer_acct_name", "Night's Watch"),
            ("ip4", "198.51.100.23"),
            (
                "tags",
                "shopify, sku:IPOD2008PINK, sku:IPOD2008BLACK, topic:orders/paid",
            ),
            ("field[%LAST_ORDER%,0]", "#9999"),
            ("field[1,0]", "403.00 USD"),
            ("p[2]", "2"),
            ("status[2]", "1"),
            ("noresponders[2]", "1"),
            ("sdate[2]", "2026-01-01 10:00:00"),
            ("p[1]", "1"),
            ("status[1]", "1"),
        ]),
        "woocommerce-order-created" | "woocommerce-order-updated" => synced(RENEE),
        "woocommerce-customer-created" => synced(&[
            ("email", "john.doe@example.com"),
            ("first_name", "John"),
            ("last_name", "Doe"),
            ("phone", "(555) 555-0000"),
        ]),
        "woocommerce-ping" => ok("ignored"),
        "woocommerce-bad-signature" => status(401),
        "stripe-checkout-session-completed" => synced(&[
            ("email", "dorothy@example.com"),
            ("first_name", "Dorothy"),
            ("last_name", "Vaughan"),
            ("phone", "+17575550142"),
            ("customer_acct_name", "West Computing"),
        ]),
        "stripe-customer-created" | "stripe-rotated-secret" => synced(JENNY),
        "stripe-invoice-paid" => synced(&[
            ("email", "invoice.payer@example.com"),
            ("first_name", "Ian"),
            ("last_name", "Payer"),
        ]),
        "stripe-customer-no-email" => ok("skipped"),
        "stripe-charge-refunded" => ok("ignored"),
        "stripe-bad-signature" => status(401),
        "gumroad-sale" => synced(&[
            ("email", "mary.shelley@example.com"),
            ("first_name", "Mary"),
            ("last_name", "Wollstonecraft Shelley"),
            ("customer_acct_name", "Lackington Press"),
        ]),
        "gumroad-test-ping" => synced(&[
            ("email", "percy@example.com"),
            ("first_name", "Percy"),
            ("last_name", "Bysshe Shelley"),
        ]),
        "gumroad-refund" => ok("ignored"),
        "gumroad-no-email" => ok("skipped"),
        "gumroad-wrong-token" => status(401),
        "gumroad-malformed" => status(400),
        "jotform-submission" => synced(&[
            ("email", "mae.jemison@example.com"),
            ("first_name", "Mae"),
            ("last_name", "Jemison"),
            ("phone", "(281) 555-0147"),
            ("customer_acct_name", "Jemison Group"),
            ("ip4", "198.51.100.61"),
        ]),
        "jotform-no-email" => ok("skipped"),
        "jotform-wrong-token" => status(401),
        "jotform-malformed" => status(400),
        // Phone and company have no fixed field id: a route selects them.
        "gravityforms-entry-json" | "gravityforms-entry-form" => synced(&[
            ("email", "annie.easley@example.com"),
            ("first_name", "Annie"),
            ("last_name", "Easley"),
            ("ip4", "203.0.113.42"),
        ]),
        "gravityforms-no-email" => ok("skipped"),
        "gravityforms-wrong-token" => status(401),
        "gravityforms-malformed" => status(400),
        "elementor-simple" => synced(&[
            ("email", "mary.jackson@example.com"),
            ("first_name", "Mary"),
            ("last_name", "Jackson"),
            ("phone", "+1 757 555 0110"),
            ("customer_acct_name", "Langley Research"),
            ("ip4", "203.0.113.51"),
        ]),
        "elementor-advanced" => synced(&[
            ("email", "christine.darden@example.com"),
            ("first_name", "Christine"),
            ("last_name", "Darden"),
            ("phone", "+1 757 555 0123"),
            ("customer_acct_name", "NASA Langley"),
            ("ip4", "203.0.113.52"),
        ]),
        "elementor-no-email" => ok("skipped"),
        "elementor-wrong-token" => status(401),
        "elementor-malformed" => status(400),
        "wpforms-json" | "wpforms-form" => synced(&[
            ("email", "dorothy.vaughan@example.com"),
            ("first_name", "Dorothy"),
            ("last_name", "Vaughan"),
            ("phone", "(757) 555-0142"),
            ("customer_acct_name", "West Area Computing"),
        ]),
        "wpforms-no-email" => ok("skipped"),
        "wpforms-wrong-token" => status(401),
        "wpforms-malformed" => status(400),
        // WPForms' default method: the edge takes POST only.
        "wpforms-get-method" => status(405),
        "googleforms-response" => synced(&[
            ("email", "margaret.hamilton@example.com"),
            ("first_name", "Margaret"),
            ("last_name", "Hamilton"),
            ("phone", "+1 617 555 0169"),
            ("customer_acct_name", "Hamilton Technologies"),
        ]),
        "googleforms-email-answer" => synced(&[
            ("email", "grace.hopper@example.com"),
            ("first_name", "Grace"),
            ("last_name", "Hopper"),
            ("customer_acct_name", "US Navy"),
        ]),
        "googleforms-no-email" => ok("skipped"),
        "googleforms-wrong-token" => status(401),
        "googleforms-malformed" => status(400),
        // Typeform: names and company are selected by field.ref in a route, not by default.
        // Names and company from answers whose refs name them, with no mapping.
        "typeform-form-response" => synced(&[
            ("email", "margaret.hamilton@example.com"),
            ("first_name", "Margaret"),
            ("last_name", "Hamilton"),
            ("phone", "+16175550123"),
            ("customer_acct_name", "MIT Instrumentation Lab"),
        ]),
        "typeform-form-response-partial" => ok("ignored"),
        "typeform-no-email" => ok("skipped"),
        "typeform-bad-signature" | "typeform-missing-signature" => status(401),
        "typeform-malformed" => status(400),
        "tally-form-response" => synced(&[
            ("email", "annie.easley@example.com"),
            ("first_name", "Annie"),
            ("last_name", "Easley"),
            ("phone", "+12165550147"),
            ("customer_acct_name", "NASA Glenn"),
        ]),
        "tally-no-email" => ok("skipped"),
        "tally-bad-signature" | "tally-missing-signature" => status(401),
        "tally-malformed" => status(400),
        "lemonsqueezy-order-created" => synced(&[
            ("email", "evelyn.granville@example.com"),
            ("first_name", "Evelyn"),
            ("last_name", "Boyd Granville"),
        ]),
        "lemonsqueezy-subscription-created" => synced(&[
            ("email", "mae.jemison@example.com"),
            ("first_name", "Mae"),
            ("last_name", "Jemison"),
        ]),
        "lemonsqueezy-order-refunded" => ok("ignored"),
        "lemonsqueezy-no-email" => ok("skipped"),
        "lemonsqueezy-bad-signature" | "lemonsqueezy-missing-signature" => status(401),
        "lemonsqueezy-malformed" => status(400),
        "paddle-customer-created" | "paddle-rotated-secret" => synced(&[
            ("email", "christine.darden@example.com"),
            ("first_name", "Christine"),
            ("last_name", "Darden"),
        ]),
        // Ids only: the contact would need an API call to Paddle.
        // The transaction's customer_id, looked up in Paddle's (sandbox) API.
        "paddle-transaction-completed" => synced(&[
            ("email", "rosalind.franklin@example.com"),
            ("first_name", "Rosalind"),
            ("last_name", "Franklin"),
        ]),
        "paddle-no-email" => ok("skipped"),
        "paddle-bad-signature" | "paddle-missing-signature" | "paddle-stale-timestamp" => {
            status(401)
        }
        "paddle-malformed" => status(400),
        "webflow-form-submission" | "webflow-rotated-secret" => synced(ZOE),
        "webflow-form-submission-v1-token" => synced(&[
            ("email", "wash@example.com"),
            ("first_name", "Hoban"),
            ("last_name", "Washburne"),
            ("phone", "+1 555 0142"),
            ("customer_acct_name", "Serenity Charters"),
        ]),
        "webflow-no-email" => ok("skipped"),
        "webflow-site-publish" => ok("ignored"),
        "webflow-bad-signature"
        | "webflow-missing-signature"
        | "webflow-stale-timestamp"
        | "webflow-v1-wrong-token" => status(401),
        "webflow-malformed" => status(400),
        "calendly-invitee-created" => synced(&[
            ("email", "river.tam@example.com"),
            ("first_name", "River"),
            ("last_name", "Tam"),
            ("phone", "+1 404-555-1234"),
            ("customer_acct_name", "Blue Sun Corporation"),
        ]),
        "calendly-invitee-created-names" => synced(&[
            ("email", "kaylee@example.com"),
            ("first_name", "Kaywinnet Lee"),
            ("last_name", "Frye"),
        ]),
        "calendly-invitee-canceled" => ok("ignored"),
        "calendly-no-email" => ok("skipped"),
        "calendly-bad-signature" | "calendly-missing-signature" => status(401),
        "calendly-malformed" => status(400),
        "hubspot-workflow-contact"
        | "hubspot-workflow-contact-query"
        | "rest-hubspot-workflow-contact" => synced(INARA),
        // The legacy signatures carry no timestamp: a route takes them only with
        // require_timestamped = false.
        "hubspot-workflow-contact-v1" | "hubspot-workflow-contact-v2" => status(401),
        // Ids only: looked up in HubSpot's CRM API (faked below); two of three exist.
        "hubspot-app-webhook" => synced(INARA),
        "hubspot-app-contacts" => ok("synced"),
        "hubspot-app-deletion" => ok("ignored"),
        "hubspot-no-email" => ok("skipped"),
        "hubspot-bad-signature" | "hubspot-missing-signature" | "hubspot-stale-timestamp" => {
            status(401)
        }
        "hubspot-malformed" => status(400),
        "standardwebhooks-contact-created" | "standardwebhooks-rotated-secret" => synced(SHEPHERD),
        "standardwebhooks-svix-headers" => synced(&[
            ("email", "mal@example.com"),
            ("first_name", "Malcolm"),
            ("last_name", "Reynolds"),
            ("phone", "+1 555 0100"),
            ("customer_acct_name", "Serenity"),
        ]),
        "standardwebhooks-no-email" => ok("skipped"),
        "standardwebhooks-bad-signature"
        | "standardwebhooks-missing-signature"
        | "standardwebhooks-stale-timestamp" => status(401),
        "standardwebhooks-malformed" => status(400),
        // Batches: five rows one by one; twelve through the importer.
        "batch-csv" => ok("synced"),
        "batch-ndjson-import" => ok("queued"),
        "batch-wrong-token" => status(401),
        "batch-malformed" => status(400),
        "import-callback-post" | "import-callback-get" => ok("recorded"),
        "import-callback-forged" => status(401),
        "health" => status(200),
        "unknown-route" => status(404),
        "method-not-allowed" => status(405),
        _ => return None,
    })
}

#[tokio::test]
async fn every_event_file_gives_its_documented_answer() {
    let _logs = logs::checked();
    let dir = repo_path("events");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|f| f.strip_suffix(".json").map(str::to_string))
        .collect();
    names.sort();
    assert!(names.len() >= 30, "events/ has {} files", names.len());
    let mut failures = Vec::new();
    // Unconstrained, as in tests/preview.rs: a MockServer dropped after the task's cooperative
    // budget is spent never returns.
    tokio::task::unconstrained(async {
    for name in &names {
        let Some(expect) = expectation(name) else {
            failures.push(format!("{name}: no expectation in tests/events.rs"));
            continue;
        };
        // A fresh fake per event, so each assertion sees only its own requests.
        let server = MockServer::start().await;
        mount_users_me(&server).await;
        mount_contact_sync(
            &server,
            ResponseTemplate::new(200).set_body_json(synced_body(42)),
        )
        .await;
        Mock::given(method("GET"))
            .and(path("/admin/api.php"))
            .and(query_param("api_action", "contact_view_email"))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"result_code": 0, "result_message": "Failed: Nothing is returned", "result_output": "json"}),
            ))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/api/3/import/bulk_import"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(
                    json!({"success": 1, "queued_contacts": 12, "batchId": "b-events"}),
                ),
            )
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/3/import/info"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"status": "completed", "success": ["1"], "failure": []})),
            )
            .mount(&server)
            .await;
        mount_turnstile(&server).await;
        mount_sender_apis(&server).await;
        let app = app_for(&server);
        // Callback events go to the import-callback function, every other one to the webhook.
        let response = if name.starts_with("import-callback") {
            callback_for(&server)
                .handle(
                    &event_request(name),
                    tokio::time::Instant::now() + std::time::Duration::from_secs(5),
                )
                .await
        } else {
            send_event(&app, name).await
        };
        let body = response.json_body();
        if response.status.as_u16() != expect.status {
            failures.push(format!(
                "{name}: status {} (expected {}), body {}",
                response.status, expect.status, response.body
            ));
            continue;
        }
        if let Some(outcome) = expect.outcome
            && body["status"] != outcome
        {
            failures.push(format!("{name}: outcome {body} (expected {outcome})"));
        }
        let syncs = received_syncs(&server).await;
        match expect.sent {
            Some(sent) if syncs != vec![pairs(sent)] => failures.push(format!(
                "{name}: sent {syncs:?}\n   expected {:?}",
                pairs(sent)
            )),
            // A batch of five goes one by one, and HubSpot's several contacts each on its
            // own: several syncs are right.
            None if !syncs.is_empty() && name != "batch-csv" && name != "hubspot-app-contacts" => {
                failures.push(format!("{name}: unexpected contact_sync {syncs:?}"))
            }
            _ => {}
        }
        if name == "batch-csv" && (body["synced"] != 5 || syncs.len() != 5) {
            failures.push(format!("{name}: {body} with {} syncs", syncs.len()));
        }
        if name == "hubspot-app-contacts" {
            let kaylee = [
                ("email", "kaylee.frye@example.com"),
                ("first_name", "Kaylee"),
                ("last_name", "Frye"),
                ("customer_acct_name", "Serenity"),
            ];
            if syncs != vec![pairs(INARA), pairs(&kaylee)]
                || body["synced"] != 2
                || body["skipped"] != 1
            {
                failures.push(format!("{name}: {body} with syncs {syncs:?}"));
            }
        }
        if expect.outcome == Some("synced")
            && !name.starts_with("batch-")
            && name != "hubspot-app-contacts"
            && body["subscriber_id"] != 42
        {
            failures.push(format!("{name}: subscriber_id missing in {body}"));
        }
    }
    })
    .await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn redirect_and_health_answers() {
    let _logs = logs::checked();
    let server = MockServer::start().await;
    mount_contact_sync(
        &server,
        ResponseTemplate::new(200).set_body_json(synced_body(7)),
    )
    .await;
    mount_turnstile(&server).await;
    let app = app_for(&server);
    let redirect = send_event(&app, "newsletter-signup").await;
    assert_eq!(
        redirect.header("location"),
        Some("https://example.com/thanks")
    );
    let before = server.received_requests().await.unwrap().len();
    assert_eq!(before, 2, "the captcha check and the contact_sync");
    let health = send_event(&app, "health").await;
    assert_eq!(health.json_body()["status"], "ok");
    assert_eq!(health.json_body()["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        before,
        "health touches no network"
    );
    let not_allowed = send_event(&app, "method-not-allowed").await;
    assert_eq!(not_allowed.header("allow"), Some("POST"));
}

#[tokio::test]
async fn the_shop_route_checks_unsubscribes_before_subscribing() {
    let _logs = logs::checked();
    let server = MockServer::start().await;
    mount_contact_sync(
        &server,
        ResponseTemplate::new(200).set_body_json(synced_body(9)),
    )
    .await;
    // The contact left list 2 earlier: it must not be re-subscribed by an order.
    Mock::given(method("GET"))
        .and(path("/admin/api.php"))
        .and(query_param("api_action", "contact_view_email"))
        .and(query_param("email", "jon@example.com"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "9", "email": "jon@example.com", "result_code": 1, "result_output": "json",
            "lists": {"2": {"listid": "2", "status": "2"}}
        })))
        .mount(&server)
        .await;
    let app = app_for(&server);
    let response = send_event(&app, "shop-orders-paid").await;
    assert_eq!(response.json_body()["status"], "synced");
    let syncs = received_syncs(&server).await;
    assert_eq!(syncs.len(), 1);
    let keys: BTreeSet<&str> = syncs[0].iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        !keys.contains("p[2]") && !keys.contains("status[2]"),
        "{keys:?}"
    );
    // List 1 follows consent, and the contact is not unsubscribed there.
    assert!(keys.contains("p[1]"));
}

/// Wix does not document the Content-Type of its JWT bodies: each one it might send verifies
/// and syncs, and so does none at all; a form's type is refused.
#[tokio::test]
async fn a_wix_jwt_is_taken_whatever_content_type_it_comes_with() {
    let _logs = logs::checked();
    for content_type in [
        Some("text/plain"),
        Some("text/plain; charset=utf-8"),
        Some("application/jwt"),
        Some("application/json"),
        Some("application/octet-stream"),
        None,
        Some("application/x-www-form-urlencoded"),
    ] {
        let server = MockServer::start().await;
        mount_accepting(&server, 42).await;
        let mut request = event_request("wix-contact-created");
        request.headers.remove("content-type");
        if let Some(value) = content_type {
            request
                .headers
                .insert("content-type", value.parse().unwrap());
        }
        let answer = send(&app_for(&server), &request).await;
        if content_type == Some("application/x-www-form-urlencoded") {
            assert_eq!(answer.status, 415, "{answer:?}");
            assert!(received_syncs(&server).await.is_empty());
        } else {
            assert_eq!(
                answer.json_body()["status"],
                "synced",
                "{content_type:?}: {}",
                answer.body
            );
            assert_eq!(received_syncs(&server).await.len(), 1);
        }
    }
}

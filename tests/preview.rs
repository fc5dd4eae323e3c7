//! For every events/ file, the preview (no network) shows exactly what the webhook function
//! sends: the same `contact_sync` fields, the same bulk import contacts, the same outcome.

mod support;

use ac_webhook_sync::mapping::Mapping;
use ac_webhook_sync::preview::{field_lines, preview};
use ac_webhook_sync::secret::AppSecret;
use serde_json::{Value, json};
use support::*;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn the_preview_of_every_event_is_what_the_function_sends() {
    let _logs = logs::checked();
    let mapping = Mapping::bundled().unwrap();
    let mut names: Vec<String> = std::fs::read_dir(repo_path("events"))
        .unwrap()
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .into_string()
                .ok()?
                .strip_suffix(".json")
                .map(str::to_string)
        })
        .filter(|n| !n.starts_with("import-callback"))
        .collect();
    names.sort();
    let mut failures = Vec::new();
    let mut compared = 0;
    // Unconstrained: a MockServer checks its mocks on drop by blocking on a tokio lock, and
    // once this task has spent its cooperative budget (many mounts, no yield) that lock's wake-up
    // goes to the blocked runtime and the drop never returns.
    tokio::task::unconstrained(async {
        for name in &names {
            let server = MockServer::start().await;
            mount_users_me(&server).await;
            mount_turnstile(&server).await;
            mount_sender_apis(&server).await;
            mount_contact_sync(
                &server,
                ResponseTemplate::new(200).set_body_json(synced_body(1)),
            )
            .await;
            Mock::given(method("GET"))
                .and(path("/admin/api.php"))
                .and(query_param("api_action", "contact_view_email"))
                .respond_with(ResponseTemplate::new(200).set_body_json(json!({"result_code": 0})))
                .mount(&server)
                .await;
            Mock::given(method("POST"))
                .and(path("/api/3/import/bulk_import"))
                .respond_with(
                    ResponseTemplate::new(200).set_body_json(json!({"success": 1, "batchId": "b"})),
                )
                .mount(&server)
                .await;
            let secret = AppSecret::from_json(&local_secret_json(&server.uri())).unwrap();
            let request = event_request(name);
            let report = preview(&mapping, &secret, &request);
            let response = send(&app_for(&server), &request).await;
            let sent: Vec<Vec<String>> = received_syncs(&server)
                .await
                .iter()
                .map(|p| field_lines(p))
                .collect();
            let verified = report["verification"] == "ok" || report.get("verification").is_none();
            if let Some(batch) = report.get("batch").filter(|b| b.is_object() && verified) {
                // A batch: the planned one-by-one syncs and import bodies are the ones sent.
                let planned: Vec<Vec<String>> = batch["contact_sync"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| {
                        c["fields"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|v| v.as_str().unwrap().to_string())
                            .collect()
                    })
                    .collect();
                let imported: Vec<Value> = server
                    .received_requests()
                    .await
                    .unwrap()
                    .iter()
                    .filter(|r| r.url.path() == "/api/3/import/bulk_import")
                    .map(|r| serde_json::from_slice(&r.body).unwrap())
                    .collect();
                if planned != sent || batch["bulk_import"].as_array().unwrap() != &imported {
                    failures.push(format!(
                        "{name}: batch preview {batch} but sent {sent:?} and imported {imported:?}"
                    ));
                }
                compared += 1;
                continue;
            }
            // A lookup's contact is found at delivery: the preview names the lookup instead.
            if report.get("lookup").is_some() {
                continue;
            }
            let planned: Option<Vec<String>> = report["contact_sync"]["fields"]
                .as_array()
                .map(|f| f.iter().map(|v| v.as_str().unwrap().to_string()).collect());
            match (&planned, sent.as_slice()) {
                (Some(planned), [sent]) => {
                    compared += 1;
                    if planned != sent {
                        failures.push(format!("{name}: preview {planned:?}\n   sent {sent:?}"));
                    }
                }
                (Some(_), []) if !verified => {}
                (None, []) => {}
                _ => failures.push(format!("{name}: preview {planned:?} but sent {sent:?}")),
            }
            // Where the function answered without delivering, the preview gives the same answer.
            let answered = response.json_body();
            if verified && planned.is_none() && report["batch"].is_null() {
                let same = match &report["outcome"] {
                    Value::Object(o) if o.contains_key("error") => {
                        o["status"] == response.status.as_u16()
                    }
                    outcome => outcome["status"] == answered["status"] || response.status == 303,
                };
                if !same && report.get("error").is_none() {
                    failures.push(format!(
                        "{name}: preview {} but answered {} {}",
                        report["outcome"], response.status, response.body
                    ));
                }
            }
        }
    })
    .await;
    assert!(compared >= 40, "compared {compared} contacts");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_batch_preview_shows_the_import_bodies() {
    let mapping = Mapping::bundled().unwrap();
    let secret = AppSecret::from_json(&local_secret_json("https://x.api-us1.com")).unwrap();
    let mut body = String::from("email,first name\n");
    for i in 0..300 {
        body.push_str(&format!("p{i}@example.com,P{i}\n"));
    }
    body.push_str("broken,Row\n");
    let mut headers = http::HeaderMap::new();
    headers.insert("content-type", "text/csv".parse().unwrap());
    let request = ac_webhook_sync::inbound::InboundRequest::post(
        "/webhooks/import?token=local-import-token",
        headers,
        body,
    );
    let report = preview(&mapping, &secret, &request);
    assert_eq!(report["verification"], "ok");
    let imports = report["batch"]["bulk_import"].as_array().unwrap();
    assert_eq!(
        imports
            .iter()
            .map(|i| i["contacts"].as_array().unwrap().len())
            .collect::<Vec<_>>(),
        vec![150, 150]
    );
    assert_eq!(imports[0]["contacts"][0]["tags"], json!(["import"]));
    assert_eq!(
        report["batch"]["rejected"],
        json!([{"row": 302, "email": "broken", "reason": "invalid email address"}])
    );
}

#[test]
fn a_lookup_is_named_and_a_saved_answer_is_mapped() {
    let mapping = ac_webhook_sync::mapping::Mapping::bundled().unwrap();
    let secret =
        ac_webhook_sync::secret::AppSecret::from_json(&local_secret_json("https://x.api-us1.com"))
            .unwrap();
    let request = event_request("bigcommerce-order-created");
    let named = ac_webhook_sync::preview::preview(&mapping, &secret, &request);
    assert_eq!(named["outcome"]["status"], "lookup");
    let lookup = named["lookup"].as_str().unwrap();
    assert!(
        lookup.starts_with("GET https://api.bigcommerce.com/stores/abc123/v2/orders/100"),
        "{lookup}"
    );
    assert!(
        !lookup.contains("local-bigcommerce-access-token"),
        "no credential shown"
    );
    let saved: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_path("examples/bigcommerce-order-100.json")).unwrap(),
    )
    .unwrap();
    let mapped = ac_webhook_sync::preview::preview_found(&mapping, &secret, &request, Some(saved));
    assert_eq!(mapped["outcome"]["status"], "deliver");
    let fields: Vec<&str> = mapped["contact_sync"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"email = katherine.coleman@example.com"),
        "{fields:?}"
    );
}

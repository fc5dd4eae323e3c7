//! The `webhook` binary through the real Lambda runtime, fed events that make `lambda_http`'s
//! own conversion panic (a body marked base64 that is not; a host that makes no URL) and then
//! a good one: each is answered 400 in its front door's shape, by the function (not as an
//! invocation error), and the same process goes on to sync the next contact.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const NEXT: &str = "/2018-06-01/runtime/invocation/next";

fn response_path(id: &str) -> String {
    format!("/2018-06-01/runtime/invocation/{id}/response")
}

#[tokio::test]
async fn events_lambda_http_would_panic_on_are_answered_400_and_the_process_goes_on() {
    let ac = MockServer::start().await;
    mount_accepting(&ac, 1).await;
    let good = std::fs::read_to_string(repo_path("events/form-json.json")).unwrap();
    let mut bad_base64: Value = serde_json::from_str(&good).unwrap();
    bad_base64["body"] = json!("%%% not base64 %%%");
    bad_base64["isBase64Encoded"] = json!(true);
    let alb: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_path("events/alb-form-urlencoded.json")).unwrap(),
    )
    .unwrap();
    let mut bad_host = alb.clone();
    bad_host["headers"]["host"] = json!("not a host name");
    let events = [
        ("req-1", bad_base64),
        ("req-2", bad_host),
        ("req-3", serde_json::from_str(&good).unwrap()),
    ];

    let runtime_api = MockServer::start().await;
    let deadline_ms = (now_secs() + 60) * 1000;
    for (priority, (id, event)) in events.iter().enumerate() {
        Mock::given(method("GET"))
            .and(path(NEXT))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("Lambda-Runtime-Aws-Request-Id", *id)
                    .insert_header("Lambda-Runtime-Deadline-Ms", deadline_ms.to_string())
                    .insert_header(
                        "Lambda-Runtime-Invoked-Function-Arn",
                        "arn:aws:lambda:us-east-1:123456789012:function:webhook",
                    )
                    .set_body_json(event),
            )
            .up_to_n_times(1)
            .with_priority(priority as u8 + 1)
            .mount(&runtime_api)
            .await;
    }
    Mock::given(method("GET"))
        .and(path(NEXT))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(60)))
        .with_priority(10)
        .mount(&runtime_api)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(
            r"^/2018-06-01/runtime/invocation/.*/(response|error)$",
        ))
        .respond_with(ResponseTemplate::new(202))
        .mount(&runtime_api)
        .await;

    let dir = std::env::temp_dir().join(format!("acws-front-doors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("secret.json");
    std::fs::write(&secret, local_secret_json(&ac.uri())).unwrap();
    let mut child = webhook_process(&runtime_api.address().to_string(), &secret)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let started = Instant::now();
    let posted = loop {
        let posted: Vec<_> = runtime_api
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.method.as_str() == "POST")
            .collect();
        if posted.len() == events.len() {
            break posted;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the function answered {} of {} events (did it die?)",
            posted.len(),
            events.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let still_running = child.try_wait().unwrap().is_none();
    child.kill().ok();
    child.wait().ok();
    std::fs::remove_dir_all(&dir).ok();
    assert!(still_running, "the process ended");

    let answer = |id: &str| -> Value {
        let request = posted
            .iter()
            .find(|r| r.url.path() == response_path(id))
            .unwrap_or_else(|| {
                panic!("{id} was not answered as a response (an invocation error?)")
            });
        serde_json::from_slice(&request.body).unwrap()
    };
    let bad_base64 = answer("req-1");
    assert_eq!(bad_base64["statusCode"], 400, "{bad_base64}");
    assert!(bad_base64["body"].as_str().unwrap().contains("base64"));
    let bad_host = answer("req-2");
    assert_eq!(bad_host["statusCode"], 400, "{bad_host}");
    assert_eq!(
        bad_host["statusDescription"], "400 Bad Request",
        "ALB's shape"
    );
    let good = answer("req-3");
    assert_eq!(good["statusCode"], 200, "{good}");
    assert!(good["body"].as_str().unwrap().contains("synced"), "{good}");
    // Only the good event reached ActiveCampaign.
    let syncs = ac
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == "/admin/api.php")
        .count();
    assert_eq!(syncs, 1);
}

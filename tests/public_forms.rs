//! The defences of public routes (README, "Securing public forms"): a filled honeypot is
//! answered exactly as a success and syncs nothing; a browser post from another origin is 403;
//! each captcha provider's token is verified server-side with the exact request it documents
//! (pass, fail, low score, wrong action, outage, a refused secret); nobody who unsubscribed is
//! re-subscribed by a public route without proof; payload tags take listed values only; an
//! address over its limit is 429; and no 503 tells an anonymous caller anything internal.

mod support;

use std::sync::Arc;
use std::time::Duration;

use ac_sandbox::{Language, Sandbox, Seed};
use ac_webhook_sync::captcha::CaptchaVerifier;
use ac_webhook_sync::delivery::MemoryQueue;
use ac_webhook_sync::functions::webhook::{Limits, WebhookApp};
use ac_webhook_sync::inbound::InboundRequest;
use ac_webhook_sync::mapping::Mapping;
use ac_webhook_sync::response::{HttpResponse, PUBLIC_UNAVAILABLE};
use ac_webhook_sync::secret::{FixedSecret, SecretCache};
use http::HeaderMap;
use serde_json::{Value, json};
use support::*;
use wiremock::matchers::{body_string, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const FORM: &str = "application/x-www-form-urlencoded";
const SITE: &str = "https://shop.example";
const CAPTCHA_KEY: &str = "0x4AAAAAAA-route-secret";

/// A public sign-up route with every defence, the given captcha and extra keys.
fn mapping(captcha: &str, extra: &str) -> Mapping {
    Mapping::from_toml(&format!(
        "[routes.signup]\nsender = \"form\"\nhoneypot = \"website\"\n\
         allowed_origins = [\"{SITE}\"]\ncaptcha = {captcha}\n\
         tags = [\"signup\", \"from:{{$.source}}\"]\ntag_values = {{ source = [\"footer\"] }}\n{extra}"
    ))
    .unwrap()
}

/// The local secret with the route's token and captcha key, pointed at `api_url`.
fn secret(api_url: &str) -> String {
    let mut secret: Value = serde_json::from_str(&local_secret_json(api_url)).unwrap();
    secret["webhook_secrets"]["signup"] = json!("signup-token");
    secret["captcha_secrets"] = json!({"signup": CAPTCHA_KEY});
    secret.to_string()
}

fn app(mapping: Mapping, api_url: &str, siteverify: &str) -> WebhookApp {
    WebhookApp::new(
        mapping,
        Arc::new(SecretCache::new(
            FixedSecret(secret(api_url)),
            Duration::from_secs(300),
        )),
        fast_client(),
        Limits {
            max_body_bytes: 1 << 20,
            invocation_budget: Duration::from_secs(10),
        },
    )
    .with_captcha_verifier(CaptchaVerifier::new(Some(siteverify.to_string())).unwrap())
}

/// A browser's post of the sign-up form from `origin`, from 203.0.113.7.
fn post(body: &str, origin: Option<&str>) -> InboundRequest {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", FORM.parse().unwrap());
    if let Some(origin) = origin {
        headers.insert("origin", origin.parse().unwrap());
    }
    let mut req = InboundRequest::post(
        "/webhooks/signup?token=signup-token",
        headers,
        body.to_string(),
    );
    req.source_ip = Some("203.0.113.7".into());
    req
}

fn signup(extra: &str) -> String {
    format!("email=ann%40example.com&name=Ann+Lee&source=footer&website={extra}")
}

/// ActiveCampaign (accepting everything) and a captcha provider on one fake server.
async fn fakes(verdict: Value) -> MockServer {
    let server = MockServer::start().await;
    mount_accepting(&server, 9).await;
    Mock::given(method("POST"))
        .and(path("/siteverify"))
        .respond_with(ResponseTemplate::new(200).set_body_json(verdict))
        .mount(&server)
        .await;
    server
}

async fn siteverify_calls(server: &MockServer) -> Vec<Vec<(String, String)>> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == "/siteverify")
        .map(|r| {
            form_urlencoded::parse(&r.body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .collect()
}

fn passed() -> Value {
    json!({"success": true, "challenge_ts": "2026-12-02T07:00:00Z", "hostname": "shop.example", "error-codes": []})
}

#[tokio::test]
async fn a_filled_honeypot_is_answered_exactly_as_a_success_and_syncs_nothing() {
    let _logs = logs::checked();
    let server = fakes(passed()).await;
    let siteverify = format!("{}/siteverify", server.uri());
    let token = "&cf-turnstile-response=tok-1";
    // Inline, without a redirect: the JSON a synced contact gets.
    let inline = app(mapping("\"turnstile\"", ""), &server.uri(), &siteverify);
    let real = send(&inline, &post(&(signup("") + token), Some(SITE))).await;
    let bot = send(
        &inline,
        &post(&(signup("http%3A%2F%2Fspam.example") + token), Some(SITE)),
    )
    .await;
    assert_same_shape(&real, &bot);
    assert_eq!(real.json_body()["status"], "synced");
    assert_eq!(received_syncs(&server).await.len(), 1, "only the person's");
    assert_eq!(
        siteverify_calls(&server).await.len(),
        1,
        "a bot's token is not even checked"
    );

    // In queue mode: the JSON a queued contact gets, with an id shaped like SQS's.
    let queue = Arc::new(MemoryQueue::new());
    let queued =
        app(mapping("\"turnstile\"", ""), &server.uri(), &siteverify).with_queue(queue.clone());
    let real = send(
        &queued,
        &post(&(signup("") + "&cf-turnstile-response=tok-2"), Some(SITE)),
    )
    .await;
    let bot = send(&queued, &post(&(signup("on") + token), Some(SITE))).await;
    assert_same_shape(&real, &bot);
    assert_eq!(real.json_body()["status"], "queued");
    assert_eq!(
        queue.messages().len(),
        1,
        "only the person's contact is queued"
    );

    // A form with a thank-you page: the same 303 to it, and nothing else.
    let redirecting = app(
        mapping(
            "\"turnstile\"",
            "redirect = \"https://shop.example/thanks\"",
        ),
        &server.uri(),
        &siteverify,
    );
    let real = send(
        &redirecting,
        &post(&(signup("") + "&cf-turnstile-response=tok-3"), Some(SITE)),
    )
    .await;
    let bot = send(&redirecting, &post(&(signup("x") + token), Some(SITE))).await;
    assert_eq!(real.status, 303);
    assert_eq!(real, bot, "byte for byte the same answer");
    assert_eq!(received_syncs(&server).await.len(), 2);
}

/// Same status, headers and JSON keys, each value of the same kind (an id is an id).
fn assert_same_shape(real: &HttpResponse, bot: &HttpResponse) {
    assert_eq!(real.status, bot.status, "{} / {}", real.body, bot.body);
    let names = |r: &HttpResponse| r.headers.iter().map(|(n, _)| *n).collect::<Vec<_>>();
    assert_eq!(names(real), names(bot));
    let (real, bot) = (real.json_body(), bot.json_body());
    let real = real.as_object().unwrap();
    let bot = bot.as_object().unwrap();
    assert_eq!(
        real.keys().collect::<Vec<_>>(),
        bot.keys().collect::<Vec<_>>()
    );
    for (key, value) in real {
        let other = &bot[key];
        match (value, other) {
            (Value::String(a), Value::String(b)) if key == "message_id" => {
                let shape = |s: &str| {
                    s.chars()
                        .map(|c| if c == '-' { '-' } else { 'x' })
                        .collect::<String>()
                };
                assert_eq!(shape(a), shape(b), "{a} / {b}");
            }
            (Value::String(a), Value::String(b)) => assert_eq!(a, b),
            (Value::Number(_), Value::Number(_)) => {}
            (a, b) => panic!("{key}: {a} / {b}"),
        }
    }
}

#[tokio::test]
async fn a_browser_post_from_another_origin_is_403_and_a_server_post_passes() {
    let _logs = logs::checked();
    let server = fakes(passed()).await;
    let app = app(
        mapping("\"turnstile\"", ""),
        &server.uri(),
        &format!("{}/siteverify", server.uri()),
    );
    let body = signup("") + "&cf-turnstile-response=tok";
    for origin in ["https://evil.example", "http://shop.example", "null"] {
        let refused = send(&app, &post(&body, Some(origin))).await;
        assert_eq!(refused.status, 403, "{origin}: {}", refused.body);
    }
    // Without Origin a browser still sends Referer; a page elsewhere is refused.
    let mut via_referer = post(&body, None);
    via_referer
        .headers
        .insert("referer", "https://evil.example/form".parse().unwrap());
    assert_eq!(send(&app, &via_referer).await.status, 403);
    assert!(received_syncs(&server).await.is_empty());
    assert!(siteverify_calls(&server).await.is_empty());
    // A server-to-server poster sends neither, and the site's own page passes.
    assert_eq!(
        send(&app, &post(&(body.clone() + "&n=1"), None))
            .await
            .json_body()["status"],
        "synced"
    );
    assert_eq!(
        send(&app, &post(&(body + "&n=2"), Some(SITE)))
            .await
            .json_body()["status"],
        "synced"
    );
}

/// What each provider is sent: its documented form fields, to its endpoint, and nothing else.
#[tokio::test]
async fn each_provider_gets_the_documented_request_and_its_pass_is_delivered() {
    let _logs = logs::checked();
    for (provider, field) in [
        ("turnstile", "cf-turnstile-response"),
        ("hcaptcha", "h-captcha-response"),
        ("recaptcha", "g-recaptcha-response"),
    ] {
        let server = MockServer::start().await;
        mount_accepting(&server, 9).await;
        let token = format!("{provider}-token.AbC_123");
        let expected = format!("secret={CAPTCHA_KEY}&response={token}&remoteip=203.0.113.7");
        Mock::given(method("POST"))
            .and(path("/siteverify"))
            .and(header("content-type", FORM))
            .and(body_string(expected))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "success": true, "score": 0.9, "action": "signup",
                "challenge_ts": "2026-12-02T07:00:00Z", "hostname": "shop.example"
            })))
            .expect(1)
            .mount(&server)
            .await;
        let app = app(
            mapping(&format!("\"{provider}\""), ""),
            &server.uri(),
            &format!("{}/siteverify", server.uri()),
        );
        let response = send(
            &app,
            &post(&format!("{}&{field}={token}", signup("")), Some(SITE)),
        )
        .await;
        assert_eq!(
            response.json_body()["status"],
            "synced",
            "{provider}: {}",
            response.body
        );
        assert_eq!(received_syncs(&server).await.len(), 1, "{provider}");
    }
}

#[tokio::test]
async fn failed_low_scored_wrong_action_and_missing_tokens_are_403() {
    let _logs = logs::checked();
    let recaptcha = "{ provider = \"recaptcha\", min_score = 0.5, action = \"signup\" }";
    let cases = [
        (
            "turnstile",
            json!({"success": false, "error-codes": ["invalid-input-response"]}),
        ),
        (
            "turnstile",
            json!({"success": false, "error-codes": ["timeout-or-duplicate"]}),
        ),
        (
            "hcaptcha",
            json!({"success": false, "error-codes": ["invalid-or-already-seen-response"]}),
        ),
        (
            recaptcha,
            json!({"success": true, "score": 0.3, "action": "signup"}),
        ),
        (
            recaptcha,
            json!({"success": true, "score": 0.9, "action": "login"}),
        ),
        (recaptcha, json!({"success": true, "score": 0.9})),
    ];
    for (captcha, verdict) in cases {
        let server = fakes(verdict.clone()).await;
        let captcha = if captcha.starts_with('{') {
            captcha.to_string()
        } else {
            format!("\"{captcha}\"")
        };
        let field = if captcha.contains("recaptcha") {
            "g-recaptcha-response"
        } else if captcha.contains("hcaptcha") {
            "h-captcha-response"
        } else {
            "cf-turnstile-response"
        };
        let app = app(
            mapping(&captcha, ""),
            &server.uri(),
            &format!("{}/siteverify", server.uri()),
        );
        let response = send(
            &app,
            &post(&format!("{}&{field}=tok", signup("")), Some(SITE)),
        )
        .await;
        assert_eq!(
            response.status, 403,
            "{captcha} {verdict}: {}",
            response.body
        );
        assert_eq!(response.json_body()["error"], "captcha verification failed");
        assert!(
            received_syncs(&server).await.is_empty(),
            "{captcha} {verdict}"
        );
        assert_eq!(siteverify_calls(&server).await.len(), 1);
    }
    let server = fakes(passed()).await;
    let app = app(
        mapping("\"turnstile\"", ""),
        &server.uri(),
        &format!("{}/siteverify", server.uri()),
    );
    let missing = send(&app, &post(&signup(""), Some(SITE))).await;
    assert_eq!(missing.status, 403);
    assert_eq!(missing.json_body()["error"], "captcha token missing");
    assert!(
        siteverify_calls(&server).await.is_empty(),
        "nothing to ask about"
    );
}

#[tokio::test]
async fn a_provider_outage_fails_closed_by_default_and_open_only_when_the_route_says() {
    let _logs = logs::checked();
    let outages = [
        ResponseTemplate::new(500),
        ResponseTemplate::new(200).set_body_string("<html>bad gateway</html>"),
        ResponseTemplate::new(200)
            .set_body_json(json!({"success": false, "error-codes": ["internal-error"]})),
        // Longer than the 3 s the provider is given.
        ResponseTemplate::new(200)
            .set_body_json(passed())
            .set_delay(Duration::from_secs(4)),
    ];
    for outage in outages {
        let server = MockServer::start().await;
        mount_accepting(&server, 9).await;
        Mock::given(method("POST"))
            .and(path("/siteverify"))
            .respond_with(outage)
            .mount(&server)
            .await;
        let siteverify = format!("{}/siteverify", server.uri());
        let closed = app(mapping("\"turnstile\"", ""), &server.uri(), &siteverify);
        let body = format!("{}&cf-turnstile-response=tok", signup(""));
        let refused = send(&closed, &post(&body, Some(SITE))).await;
        assert_cause_logged(&refused, "captcha provider turnstile unavailable");
        assert!(refused.header("retry-after").is_some());
        assert!(received_syncs(&server).await.is_empty());
        let open = app(
            mapping("{ provider = \"turnstile\", on_outage = \"accept\" }", ""),
            &server.uri(),
            &siteverify,
        );
        let accepted = send(&open, &post(&(body + "&n=2"), Some(SITE))).await;
        assert_eq!(
            accepted.json_body()["status"],
            "synced",
            "{}",
            accepted.body
        );
    }
    // A secret the provider refuses is ours to fix: 503 whatever the route says of outages.
    let server = fakes(json!({"success": false, "error-codes": ["invalid-input-secret"]})).await;
    let open = app(
        mapping("{ provider = \"turnstile\", on_outage = \"accept\" }", ""),
        &server.uri(),
        &format!("{}/siteverify", server.uri()),
    );
    let refused = send(
        &open,
        &post(
            &format!("{}&cf-turnstile-response=tok", signup("")),
            Some(SITE),
        ),
    )
    .await;
    assert_cause_logged(&refused, "refused the route's captcha secret");
    assert!(received_syncs(&server).await.is_empty());
}

/// mary@example.com unsubscribed from list 1 in the sandbox's seed. A public opt-in route
/// re-subscribes her only on a verified captcha; unverified (its provider down, the route
/// accepting that) she stays unsubscribed.
#[tokio::test]
async fn an_unsubscribed_contact_is_re_subscribed_only_with_proof() {
    let _logs = logs::checked();
    let opt_in = "opt_in = true\n[[routes.signup.lists]]\nid = 1\nstatus = \"always\"\n";
    let body = "email=mary%40example.com&name=Mary+Jackson&source=footer&website=&cf-turnstile-response=tok";
    for (verdict, resubscribed) in [(None, false), (Some(passed()), true)] {
        let sandbox = Sandbox::new(LOCAL_API_KEY, Language::English)
            .quiet()
            .with_seed(Seed::bundled());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(ac_sandbox::serve(listener, sandbox.clone()));
        assert_eq!(
            sandbox.contacts()["mary@example.com"].lists.get(&1),
            Some(&2)
        );
        let provider = MockServer::start().await;
        let answer = match &verdict {
            Some(verdict) => ResponseTemplate::new(200).set_body_json(verdict),
            None => ResponseTemplate::new(503),
        };
        Mock::given(method("POST"))
            .and(path("/siteverify"))
            .respond_with(answer)
            .mount(&provider)
            .await;
        let app = app(
            mapping(
                "{ provider = \"turnstile\", on_outage = \"accept\" }",
                opt_in,
            ),
            &url,
            &format!("{}/siteverify", provider.uri()),
        );
        let response = send(&app, &post(body, Some(SITE))).await;
        assert_eq!(
            response.json_body()["status"],
            "synced",
            "{}",
            response.body
        );
        let status = sandbox.contacts()["mary@example.com"]
            .lists
            .get(&1)
            .copied();
        assert_eq!(
            status,
            Some(if resubscribed { 1 } else { 2 }),
            "verified: {resubscribed}"
        );
    }
}

#[test]
fn a_public_route_cannot_re_subscribe_or_mint_tags_without_saying_how() {
    let error = |toml: &str| Mapping::from_toml(toml).unwrap_err().to_string();
    let opt_in = error("[routes.f]\nsender = \"form\"\nopt_in = true\n");
    assert!(opt_in.starts_with("route 'f', key 'opt_in'"), "{opt_in}");
    // Proof: a captcha, or a subscription form's double opt-in; a signed sender is its own.
    for proven in ["captcha = \"hcaptcha\"", "form = 3"] {
        assert!(
            Mapping::from_toml(&format!(
                "[routes.f]\nsender = \"form\"\nopt_in = true\n{proven}\n"
            ))
            .is_ok()
        );
    }
    assert!(Mapping::from_toml("[routes.s]\nsender = \"shopify\"\nopt_in = true\n").is_ok());
    let tag = error("[routes.f]\nsender = \"form\"\ntags = [\"src:{$.utm_source}\"]\n");
    assert!(
        tag.starts_with("route 'f', key 'tags[0]'") && tag.contains("tag_values.utm_source"),
        "{tag}"
    );
    let sku = error("[routes.j]\nsender = \"jotform\"\ntags = [\"sku:{sku}\"]\n");
    assert!(sku.contains("tag_values.sku"), "{sku}");
    let stray =
        error("[routes.f]\nsender = \"form\"\ntags = [\"x\"]\ntag_values = { source = [\"a\"] }\n");
    assert!(
        stray.starts_with("route 'f', key 'tag_values.source'"),
        "{stray}"
    );
    // Signed senders' payloads are the shop's own: no list needed.
    assert!(
        Mapping::from_toml("[routes.s]\nsender = \"shopify\"\ntags = [\"sku:{sku}\"]\n").is_ok()
    );
    // `{topic}` is bounded by a route's topics; on a token route taking every topic it is not.
    let topic =
        error("[routes.g]\nsender = \"gumroad\"\ntopics = [\"*\"]\ntags = [\"gr:{topic}\"]\n");
    assert!(topic.contains("tag_values.topic"), "{topic}");
    assert!(
        Mapping::from_toml("[routes.g]\nsender = \"gumroad\"\ntags = [\"gr:{topic}\"]\n").is_ok()
    );
    // A batch is a server's export: no honeypot or captcha, so no proof for opt_in but a form.
    let batch = error("[routes.b]\nsender = \"batch\"\nopt_in = true\ncaptcha = \"turnstile\"\n");
    assert!(batch.starts_with("route 'b', key 'captcha'"), "{batch}");
    assert!(
        Mapping::from_toml("[routes.b]\nsender = \"batch\"\nopt_in = true\nform = 2\n").is_ok()
    );
    // A signed WPForms route is no public route: its payload tags need no list.
    assert!(
        Mapping::from_toml(
            "[routes.w]\nsender = \"wpforms\"\nsigned = true\ntags = [\"s:{$.source}\"]\n"
        )
        .is_ok()
    );
    assert!(
        error("[routes.w]\nsender = \"wpforms\"\ntags = [\"s:{$.source}\"]\n")
            .contains("tag_values.source")
    );
    assert!(error("[routes.f]\nsender = \"form\"\nsigned = true\n").contains("'signed'"));
    let timestamped = error("[routes.s]\nsender = \"shopify\"\nrequire_timestamped = false\n");
    assert!(timestamped.contains("require_timestamped"), "{timestamped}");
    for bad in [
        "captcha = \"capy\"",
        "allowed_origins = [\"shop.example\"]",
        "rate_limit_per_ip = 0",
        "captcha = { provider = \"recaptcha\", min_score = 2.0 }",
    ] {
        assert!(
            Mapping::from_toml(&format!("[routes.f]\nsender = \"form\"\n{bad}\n")).is_err(),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn a_payload_tag_takes_only_a_listed_value() {
    let _logs = logs::checked();
    let server = fakes(passed()).await;
    let app = app(
        mapping("\"turnstile\"", ""),
        &server.uri(),
        &format!("{}/siteverify", server.uri()),
    );
    for (source, n) in [("FOOTER", 1), ("vip-list-42", 2)] {
        let body =
            format!("email=ann%40example.com&source={source}&cf-turnstile-response=tok&n={n}");
        assert_eq!(
            send(&app, &post(&body, Some(SITE))).await.json_body()["status"],
            "synced"
        );
    }
    let tags: Vec<String> = received_syncs(&server)
        .await
        .iter()
        .map(|sync| {
            sync.iter()
                .find(|(k, _)| k == "tags")
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        })
        .collect();
    // The route's spelling of the value, not the payload's.
    assert_eq!(tags, ["signup, from:footer", "signup"]);
}

#[tokio::test]
async fn one_address_over_its_limit_is_429_until_the_minute_is_over() {
    let _logs = logs::checked();
    let server = fakes(passed()).await;
    let app = app(
        mapping("\"turnstile\"", "rate_limit_per_ip = 3"),
        &server.uri(),
        &format!("{}/siteverify", server.uri()),
    );
    let mut statuses = Vec::new();
    for n in 0..5 {
        let body = format!("{}&cf-turnstile-response=tok&n={n}", signup(""));
        statuses.push(send(&app, &post(&body, Some(SITE))).await);
    }
    let codes: Vec<u16> = statuses.iter().map(|r| r.status.as_u16()).collect();
    // A minute boundary in the middle resets the count: at least the first three pass.
    assert!(codes[..3].iter().all(|c| *c == 200), "{codes:?}");
    let limited = statuses
        .iter()
        .find(|r| r.status == 429)
        .expect("the fourth or fifth is limited");
    let wait: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait));
    // Another address is its own count.
    let mut other = post(
        &format!("{}&cf-turnstile-response=tok&n=9", signup("")),
        Some(SITE),
    );
    other.source_ip = Some("198.51.100.1".into());
    assert_eq!(send(&app, &other).await.status, 200);
}

#[tokio::test]
async fn a_503_tells_an_anonymous_caller_nothing_internal() {
    let _logs = logs::checked();
    // The secret's JSON holds a key typed as a number; serde's own message would quote it.
    let app = app_with(
        FixedSecret(r#"{"api_url":"https://x.api-us1.com","api_key":7312345678}"#.into()),
        fast_client(),
        1 << 20,
    );
    let response = send_event(&app, "form-json").await;
    assert_eq!(response.json_body(), json!({"error": PUBLIC_UNAVAILABLE}));
    assert_cause_logged(&response, "api_key");
    assert!(
        !logs::captured().text().contains("7312345678"),
        "not even in the log"
    );
}

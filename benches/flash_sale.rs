//! A flash sale through the deployed shape: signed Shopify orders arrive at the webhook
//! function in queue mode, and sync-workers drain the queue as Lambda's SQS event source
//! mapping would drive them (batches of `BatchSize` gathered for at most the batching
//! window, at most `MaximumConcurrency` at once, successes deleted, reported failures left to
//! come back), against the local ActiveCampaign at its real paces (5 requests/s, 100 imports
//! a minute, 20 single-contact imports a minute). Reports the time from the last webhook to
//! the last contact present, the requests made, and how many contacts went one by one and
//! why; then one webhook on a quiet queue, and its time to present.
//!
//! The queue is an in-process one with SQS's semantics (visibility timeout, receive counts,
//! `ChangeMessageVisibility`, delete by receipt handle) and the claims are in memory: moto
//! takes about 30 `SendMessage`s a second and 1.8 s per `ReceiveMessage` 3,000 messages deep
//! on this machine, far from the 167 a second a sale sends, so it would measure moto.
//!
//! Run: `cargo bench --bench flash_sale`. `FLASH_SALE_ORDERS`,
//! `FLASH_SALE_SECONDS`, `WORKER_BATCH_SIZE`, `WORKER_BATCH_WINDOW_SECONDS` and
//! `WORKER_MAX_CONCURRENCY` override the template's defaults; `FLASH_SALE_JSON=1` prints
//! one JSON line for scripts/perf.py.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ac_sandbox::{Language, Sandbox};
use ac_webhook_sync::activecampaign::importer::to_bulk_contact;
use ac_webhook_sync::activecampaign::{ActiveCampaignClient, ClientSettings};
use ac_webhook_sync::delivery::{
    ContactQueue, InlineDelivery, MemoryIdempotencyStore, PartlySent, QueueError, RetrySchedule,
};
use ac_webhook_sync::functions::sync_worker::{QueueRecord, SyncWorker};
use ac_webhook_sync::functions::webhook::{Limits, WebhookApp};
use ac_webhook_sync::inbound::InboundRequest;
use ac_webhook_sync::mapping::Mapping;
use ac_webhook_sync::pipeline::{Arrival, Plan, arrive, verify_and_interpret};
use ac_webhook_sync::secret::{AppSecret, FixedSecret, SecretCache};
use base64::Engine;
use common::support;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use tokio::time::Instant;

/// A Shopify route whose contacts the importer can carry: custom fields by id, no responder
/// options, no subscription date (the bundled `shop` route has all three; see the report).
const SALE_ROUTE: &str = r#"
[routes.sale]
sender = "shopify"
topics = ["orders/paid"]
tags = ["shopify", "sku:{sku}"]

[routes.sale.contact]
phone = "$.billing_address.phone"

[[routes.sale.lists]]
id = 2
status = "always"

[routes.sale.fields]
"1" = "{$.total_price} {$.currency}"
"#;

/// What the template deploys: the worker's timeout less the time to hand a batch back.
const INVOCATION_BUDGET: Duration = Duration::from_secs(55);
/// The sync-worker's `Timeout`.
const LAMBDA_TIMEOUT: Duration = Duration::from_secs(60);

struct Shape {
    orders: usize,
    seconds: f64,
    batch_size: usize,
    window: Duration,
    concurrency: usize,
}

/// A parameter's `Default:` in template.yaml, unless the environment overrides it.
fn template_default(parameter: &str, env: &str) -> f64 {
    if let Some(value) = std::env::var(env).ok().and_then(|v| v.parse().ok()) {
        return value;
    }
    let template = std::fs::read_to_string(support::repo_path("template.yaml")).unwrap();
    let block = template
        .split(&format!("\n  {parameter}:\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("{parameter} is a template parameter"));
    block
        .lines()
        .find_map(|l| l.trim().strip_prefix("Default: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{parameter} has a numeric default"))
}

fn shape() -> Shape {
    let env = |name: &str, default: f64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    Shape {
        orders: env("FLASH_SALE_ORDERS", 10_000.0) as usize,
        seconds: env("FLASH_SALE_SECONDS", 60.0),
        batch_size: template_default("WorkerBatchSize", "WORKER_BATCH_SIZE") as usize,
        window: Duration::from_secs_f64(template_default(
            "WorkerBatchWindowSeconds",
            "WORKER_BATCH_WINDOW_SECONDS",
        )),
        concurrency: template_default("WorkerMaxConcurrency", "WORKER_MAX_CONCURRENCY") as usize,
    }
}

/// ActiveCampaign requests by kind and answer, counted as the sandbox answers them.
type Counts = Arc<Mutex<BTreeMap<String, usize>>>;

async fn start_sandbox(counts: Counts) -> (Sandbox, String) {
    let sandbox = Sandbox::new(support::LOCAL_API_KEY, Language::English)
        .with_rate_limit(5)
        .quiet();
    let router = sandbox.router().layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let counts = counts.clone();
            async move {
                let kind = match request.uri().path() {
                    "/admin/api.php" => request
                        .uri()
                        .query()
                        .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("api_action=")))
                        .unwrap_or("v1")
                        .to_string(),
                    other => other.trim_start_matches("/api/3/").to_string(),
                };
                let response = next.run(request).await;
                let key = format!("{kind} {}", response.status().as_u16());
                *counts.lock().unwrap().entry(key).or_default() += 1;
                response
            }
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (sandbox, url)
}

fn secret_json(api_url: &str) -> String {
    let mut secret: Value = serde_json::from_str(&support::local_secret_json(api_url)).unwrap();
    secret["webhook_secrets"]["sale"] = secret["webhook_secrets"]["shop"].clone();
    secret.to_string()
}

/// Order `n` of the sale: the committed `orders/paid` with its own buyer, id and webhook id,
/// signed as Shopify signs.
fn order(template: &InboundRequest, secret: &AppSecret, route: &str, n: usize) -> InboundRequest {
    let mut order: Value = serde_json::from_slice(&template.body).unwrap();
    let email = format!("buyer{n}@example.com");
    order["id"] = json!(900_000_000 + n);
    order["email"] = json!(email);
    order["contact_email"] = json!(email);
    order["customer"]["email"] = json!(email);
    let body = serde_json::to_vec(&order).unwrap();
    let key = secret.route_secrets(route)[0].clone();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(
        secrecy::ExposeSecret::expose_secret(&key).as_bytes(),
    )
    .unwrap();
    mac.update(&body);
    let mut req = template.clone();
    req.path = format!("/webhooks/{route}");
    req.body = body.into();
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    req.headers
        .insert("x-shopify-hmac-sha256", signature.parse().unwrap());
    for header in ["x-shopify-webhook-id", "x-shopify-event-id"] {
        req.headers
            .insert(header, format!("sale-{n}-{header}").parse().unwrap());
    }
    req
}

/// The template's queue: messages received are hidden for its visibility timeout, handed back
/// ones come back after it (or after the wait the worker set), deleted ones are gone.
#[derive(Default)]
struct SaleQueue {
    inner: Mutex<QueueState>,
}

#[derive(Default)]
struct QueueState {
    sent: usize,
    visible: std::collections::VecDeque<String>,
    /// Message id → (body, receive count, hidden until).
    messages: std::collections::HashMap<String, (String, u32, Option<Instant>)>,
}

/// The template's `VisibilityTimeout`.
const VISIBILITY: Duration = Duration::from_secs(360);

impl SaleQueue {
    fn push(&self, body: String) -> String {
        let mut state = self.inner.lock().unwrap();
        state.sent += 1;
        let id = format!("msg-{}", state.sent);
        state.messages.insert(id.clone(), (body, 0, None));
        state.visible.push_back(id.clone());
        id
    }

    /// Up to `max` visible messages, each hidden for the visibility timeout (the receipt
    /// handle is the message id: one receiver at a time holds a message here).
    fn receive(&self, max: usize) -> Vec<QueueRecord> {
        let mut state = self.inner.lock().unwrap();
        let now = Instant::now();
        let expired: Vec<String> = state
            .messages
            .iter()
            .filter(|(_, (_, _, until))| until.is_some_and(|u| u <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            if let Some(entry) = state.messages.get_mut(&id) {
                entry.2 = None;
            }
            state.visible.push_back(id);
        }
        let mut records = Vec::new();
        while records.len() < max {
            let Some(id) = state.visible.pop_front() else {
                break;
            };
            let Some((body, count, until)) = state.messages.get_mut(&id) else {
                continue;
            };
            *count += 1;
            *until = Some(now + VISIBILITY);
            records.push(QueueRecord {
                message_id: id.clone(),
                receipt_handle: id,
                body: body.clone(),
                receive_count: *count,
            });
        }
        records
    }

    fn delete(&self, ids: &[&str]) {
        let mut state = self.inner.lock().unwrap();
        for id in ids {
            state.messages.remove(*id);
        }
    }
}

#[async_trait::async_trait]
impl ContactQueue for SaleQueue {
    async fn send_body(
        &self,
        body: String,
        _attributes: &[(&str, &str)],
        _deadline: Instant,
    ) -> Result<String, QueueError> {
        Ok(self.push(body))
    }

    async fn send_many(
        &self,
        bodies: Vec<String>,
        _attributes: &[(&str, &str)],
        _deadline: Instant,
    ) -> Result<usize, PartlySent> {
        let count = bodies.len();
        for body in bodies {
            self.push(body);
        }
        Ok(count)
    }

    async fn change_visibility(&self, receipt: &str, delay: Duration) -> Result<(), QueueError> {
        let mut state = self.inner.lock().unwrap();
        if let Some(entry) = state.messages.get_mut(receipt) {
            entry.2 = Some(Instant::now() + delay);
        }
        Ok(())
    }
}

/// Why the bundled `shop` route's contacts cannot go through the importer (`None` if they can).
fn bundled_shop_route_goes_one_by_one() -> Option<&'static str> {
    let (mapping, secret) = common::fixtures();
    let req = common::order_request(&secret);
    let Ok(Arrival::Request(route)) = arrive(&mapping, 1 << 20, &req) else {
        panic!("the committed order reaches the shop route")
    };
    match verify_and_interpret(route, &req, &secret) {
        Ok(Plan::Contact { contact, .. }) => to_bulk_contact(&contact, false).err(),
        _ => panic!("the committed order maps to a contact"),
    }
}

/// One sync-worker instance driven as the event source mapping drives it: gather up to
/// `batch_size` messages, for at most `window` after the first, invoke, delete what succeeded.
async fn poller(
    worker: Arc<SyncWorker>,
    queue: Arc<SaleQueue>,
    shape: Arc<Shape>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    batches: Arc<Mutex<Vec<usize>>>,
    timeouts: Arc<std::sync::atomic::AtomicUsize>,
) {
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        let mut records = Vec::new();
        let mut first = None::<Instant>;
        while records.len() < shape.batch_size
            && first.is_none_or(|f: Instant| f.elapsed() < shape.window)
            && !stop.load(std::sync::atomic::Ordering::SeqCst)
        {
            let received = queue.receive(shape.batch_size - records.len());
            if received.is_empty() {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            first.get_or_insert_with(Instant::now);
            records.extend(received);
        }
        if records.is_empty() {
            continue;
        }
        batches.lock().unwrap().push(records.len());
        let ids: Vec<String> = records.iter().map(|r| r.message_id.clone()).collect();
        // Lambda's timeout (the template's 60 s): past it the whole batch comes back, as the
        // event source mapping returns a batch whose invocation failed.
        let Ok(report) = tokio::time::timeout(
            LAMBDA_TIMEOUT,
            worker.process(records, Instant::now() + INVOCATION_BUDGET),
        )
        .await
        else {
            timeouts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            continue;
        };
        let done: Vec<&str> = ids
            .iter()
            .filter(|id| !report.failed.contains(id))
            .map(String::as_str)
            .collect();
        queue.delete(&done);
    }
}

/// Waits until the sandbox holds `count` contacts; when that was.
async fn present(sandbox: &Sandbox, count: usize, give_up: Duration) -> Option<Instant> {
    let started = Instant::now();
    while started.elapsed() < give_up {
        if sandbox.contacts().len() >= count {
            return Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("flash_sale: bench");
        return;
    }
    let shape = Arc::new(shape());
    let queue = Arc::new(SaleQueue::default());
    let dead_letters = Arc::new(ac_webhook_sync::delivery::MemoryQueue::new());
    let claims = Arc::new(MemoryIdempotencyStore::new());
    let counts: Counts = Arc::default();
    let (sandbox, api_url) = start_sandbox(counts.clone()).await;
    let secret_json = secret_json(&api_url);
    let secret = AppSecret::from_json(&secret_json).unwrap();
    let secrets = || {
        Arc::new(SecretCache::new(
            FixedSecret(secret_json.clone()),
            Duration::from_secs(300),
        ))
    };

    // `FLASH_SALE_ROUTE=shop`: the bundled mapping's shop route, whose contacts go one by one.
    let route = std::env::var("FLASH_SALE_ROUTE").unwrap_or_else(|_| "sale".into());
    let mapping = if route == "sale" {
        Mapping::from_toml(SALE_ROUTE).unwrap()
    } else {
        Mapping::bundled().unwrap()
    };
    let source: Arc<dyn ContactQueue> = queue.clone();
    let app = Arc::new(
        WebhookApp::new(
            mapping,
            secrets(),
            ActiveCampaignClient::new(ClientSettings::default()).unwrap(),
            Limits {
                max_body_bytes: 1 << 20,
                invocation_budget: Duration::from_secs(25),
            },
        )
        .with_queue(source.clone()),
    );
    // Each instance paces itself at its share of the account (AC_SHARED_BY, as deployed).
    let shared = shape.concurrency as f64;
    let defaults = ClientSettings::default();
    let workers: Vec<Arc<SyncWorker>> = (0..shape.concurrency)
        .map(|_| {
            let client = ActiveCampaignClient::new(ClientSettings {
                requests_per_second: defaults.requests_per_second / shared,
                imports_per_second: defaults.imports_per_second / shared,
                ..ClientSettings::default()
            })
            .unwrap();
            let cache = secrets();
            Arc::new(
                SyncWorker::new(
                    InlineDelivery::new(client, cache.clone()),
                    cache,
                    Some(dead_letters.clone()),
                    10,
                )
                .with_source_queue(Some(source.clone()), RetrySchedule::default())
                .with_idempotency_store(claims.clone())
                .with_invocation_budget(INVOCATION_BUDGET),
            )
        })
        .collect();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let batches: Arc<Mutex<Vec<usize>>> = Arc::default();
    let timeouts: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
    for worker in &workers {
        tokio::spawn(poller(
            worker.clone(),
            queue.clone(),
            shape.clone(),
            stop.clone(),
            batches.clone(),
            timeouts.clone(),
        ));
    }

    // The sale: the orders spread evenly over the minute, each answered as Shopify would see.
    let template = support::event_request("shopify-orders-paid");
    let started = Instant::now();
    let spacing = Duration::from_secs_f64(shape.seconds / shape.orders as f64);
    let mut sends = tokio::task::JoinSet::new();
    for n in 0..shape.orders {
        tokio::time::sleep_until(started + spacing * n as u32).await;
        let (app, req) = (app.clone(), order(&template, &secret, &route, n));
        sends.spawn(async move {
            let answer = app
                .handle(&req, Instant::now() + Duration::from_secs(25))
                .await;
            (answer.status, Instant::now())
        });
    }
    let mut queued = 0;
    let mut last_webhook = started;
    while let Some(Ok((status, at))) = sends.join_next().await {
        queued += usize::from(status == 200);
        last_webhook = last_webhook.max(at);
    }
    let arrival = last_webhook - started;
    let done = present(&sandbox, queued, Duration::from_secs(1800)).await;
    let drain = done.map(|d| d.saturating_duration_since(last_webhook));
    let present_after_sale = sandbox.contacts().len();
    let sale_counts = std::mem::take(&mut *counts.lock().unwrap());
    let sale_batches = std::mem::take(&mut *batches.lock().unwrap());

    // A quiet day: one order on an empty queue (the workers idle, polling).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = sandbox.contacts().len();
    let lone = order(&template, &secret, &route, shape.orders + 1);
    let sent = Instant::now();
    app.handle(&lone, Instant::now() + Duration::from_secs(25))
        .await;
    let quiet = present(&sandbox, before + 1, Duration::from_secs(120))
        .await
        .map(|at| at - sent);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);

    let requests: usize = sale_counts.values().sum();
    let count_of = |prefix: &str| -> usize {
        sale_counts
            .iter()
            .filter(|(k, _)| k.starts_with(prefix) && k.ends_with(" 200"))
            .map(|(_, n)| n)
            .sum()
    };
    let imports = count_of("import/bulk_import");
    let one_by_one = count_of("contact_sync");
    let imported = queued.saturating_sub(one_by_one);
    let why_shop = bundled_shop_route_goes_one_by_one();
    let mean_batch = sale_batches.iter().sum::<usize>() as f64 / sale_batches.len().max(1) as f64;
    let secs = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64());
    let figures = json!({
        "orders": shape.orders,
        "queued": queued,
        "arrival_s": arrival.as_secs_f64(),
        "batch_size": shape.batch_size,
        "window_s": shape.window.as_secs_f64(),
        "concurrency": shape.concurrency,
        "drain_after_last_webhook_s": secs(drain),
        "present": present_after_sale,
        "dead_lettered": dead_letters.messages().len(),
        "timed_out_batches": timeouts.load(std::sync::atomic::Ordering::SeqCst),
        "route": route,
        "requests": requests,
        "requests_by_kind": sale_counts,
        "bulk_imports": imports,
        "contacts_per_import": imported as f64 / imports.max(1) as f64,
        "one_by_one": one_by_one,
        "batches": sale_batches.len(),
        "mean_batch": mean_batch,
        "quiet_day_s": secs(quiet),
        "bundled_shop_route_one_by_one_because": why_shop,
    });
    if std::env::var("FLASH_SALE_JSON").is_ok() {
        println!("{figures}");
        return;
    }
    println!(
        "flash sale: {} orders in {:.1} s (batch size {}, window {:.0} s, {} workers)",
        shape.orders,
        arrival.as_secs_f64(),
        shape.batch_size,
        shape.window.as_secs_f64(),
        shape.concurrency
    );
    println!(
        "  last webhook -> last contact present: {:.1} s ({} of {} queued present)",
        secs(drain),
        figures["present"],
        queued
    );
    println!(
        "  ActiveCampaign requests: {requests} ({imports} bulk imports of {:.0} contacts on average, {one_by_one} contacts one by one)",
        figures["contacts_per_import"].as_f64().unwrap_or_default()
    );
    println!("  by kind and answer: {sale_counts:?}");
    println!(
        "  dead-lettered: {}, batches past the Lambda timeout: {}",
        figures["dead_lettered"], figures["timed_out_batches"]
    );
    println!(
        "  worker batches: {} (mean {mean_batch:.0} messages)",
        sale_batches.len()
    );
    println!("quiet day: one webhook -> present: {:.2} s", secs(quiet));
    match why_shop {
        Some(why) => {
            println!("the bundled shop route's orders go one by one (contact_sync), because {why}")
        }
        None => println!("the bundled shop route's orders go through the importer"),
    }
}

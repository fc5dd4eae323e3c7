//! Per-request CPU cost of the webhook function, without any network: route resolution,
//! signature verification, parsing, mapping and the `contact_sync` body, through the same
//! `pipeline` seam the function and the preview use.
//!
//! * `order_10kb/*`: a ~10 KB signed Shopify `orders/paid` on the `shop` route (JSONPath
//!   contact fields, a tag per SKU, two lists), against a bare `serde_json::Value` parse of the
//!   same bytes and against decoding the Function URL event around it.
//! * `events/*`: every events/ sample, one benchmark each (shorter measurement).
//! * `dedupe/*`: what deduplication adds to a delivery with claims in memory (a local run):
//!   the key of the 10 KB order, a claim taken and finished, a duplicate answered.
//!
//! `cargo bench --bench per_request`; `scripts/perf.py` reads the medians back from
//! target/criterion. Filter with `cargo bench --bench per_request -- order_10kb`.

mod common;

use std::hint::black_box;
use std::time::Duration;

use ac_webhook_sync::aws::lambda::http as lambda;
use common::{fixtures, order_event_json, order_request, plan_and_encode, support};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::Value;

fn order_10kb(c: &mut Criterion) {
    let (mapping, secret) = fixtures();
    let req = order_request(&secret);
    // The plan must be a delivery, or the benchmark measures an early refusal.
    let sent = plan_and_encode(&mapping, &secret, &req);
    assert!(sent > 0, "the 10 KB order must map to a contact_sync body");
    eprintln!(
        "order_10kb: body {} bytes, contact_sync body {sent} bytes",
        req.body.len()
    );
    let event = order_event_json(&req);
    let mut group = c.benchmark_group("order_10kb");
    group.bench_function("plan_and_encode", |b| {
        b.iter(|| plan_and_encode(&mapping, &secret, black_box(&req)))
    });
    group.bench_function("serde_json_value", |b| {
        b.iter(|| serde_json::from_slice::<Value>(black_box(&req.body)).map(|v| v.is_object()))
    });
    group.bench_function("function_url_event_decode", |b| {
        b.iter(|| lambda::from_json(black_box(&event)).map(|r| r.body.len()))
    });
    group.finish();
}

fn events(c: &mut Criterion) {
    let (mapping, secret) = fixtures();
    let mut names: Vec<String> = std::fs::read_dir(support::repo_path("events"))
        .expect("events/")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".json").map(str::to_string)
        })
        .collect();
    names.sort();
    let mut group = c.benchmark_group("events");
    group
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_millis(400))
        .sample_size(20);
    for name in names {
        let req = support::event_request(&name);
        group.bench_function(name, |b| {
            b.iter(|| plan_and_encode(&mapping, &secret, black_box(&req)))
        });
    }
    group.finish();
}

fn dedupe(c: &mut Criterion) {
    use ac_webhook_sync::delivery::idempotency::{self, Stage};
    use ac_webhook_sync::delivery::{Dedupe, MemoryIdempotencyStore};
    let (_, secret) = fixtures();
    let req = order_request(&secret);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let dedupe = Dedupe::new(std::sync::Arc::new(MemoryIdempotencyStore::new()));
    let answer = serde_json::json!({"status": "synced", "subscriber_id": 42});
    let window = Some(Duration::from_secs(3600));
    let deadline = || tokio::time::Instant::now() + Duration::from_secs(5);
    let mut group = c.benchmark_group("dedupe");
    group.bench_function("key_by_id", |b| {
        b.iter(|| {
            let identity =
                idempotency::delivery_identity(Some("orders/paid"), Some("98880550-7158"));
            idempotency::key(
                Stage::Received,
                "shop",
                identity.as_deref(),
                black_box(&req.body),
            )
        })
    });
    group.bench_function("key_by_body_digest", |b| {
        b.iter(|| idempotency::key(Stage::Received, "shop", None, black_box(&req.body)))
    });
    let mut n = 0u64;
    group.bench_function("claim_and_finish", |b| {
        b.iter(|| {
            n += 1;
            runtime.block_on(async {
                let claim = dedupe.claim(format!("k{n}"), window, deadline()).await;
                dedupe.finish(&claim, &answer).await;
            })
        })
    });
    runtime.block_on(async {
        let claim = dedupe.claim("dup".into(), window, deadline()).await;
        dedupe.finish(&claim, &answer).await;
    });
    group.bench_function("duplicate", |b| {
        b.iter(|| runtime.block_on(dedupe.claim("dup".into(), window, deadline())))
    });
    group.finish();
}

criterion_group!(benches, order_10kb, events, dedupe);
criterion_main!(benches);

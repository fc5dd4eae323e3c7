//! Peak memory of each HTTP function for the largest body each kind of route takes: every
//! case runs in a process of its own (this binary, re-run with the case's name), through the
//! Lambda event adapter and the whole request path, and reports its peak RSS (`VmHWM`).
//! ActiveCampaign is a closed port, so delivery gives up at once: the peak is the request's
//! parse, mapping and packing, which is what the body's size drives.
//!
//!     cargo bench --bench memory

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Command;
use std::time::Duration;

use ac_webhook_sync::aws::lambda::http as lambda;
use ac_webhook_sync::functions::import_callback::{CallbackApp, MAX_CALLBACK_BODY_BYTES};
use base64::Engine;
use serde_json::json;

/// The cases: name, function, and what it measures.
const CASES: &[(&str, &str, &str)] = &[
    ("baseline", "webhook", "GET /health: the process itself"),
    (
        "json",
        "webhook",
        "a 1 MiB JSON form post (the 1 MiB limit)",
    ),
    ("form", "webhook", "a 1 MiB urlencoded form of 5,000 fields"),
    (
        "multipart",
        "webhook",
        "a 1 MiB multipart form, one 900 KB part",
    ),
    ("batch-json", "webhook", "a 6 MiB JSON batch of 20,000 rows"),
    (
        "batch-ndjson-rows",
        "webhook",
        "an NDJSON batch at the row limit (25,000 short rows)",
    ),
    (
        "batch-json-queue",
        "webhook-queue",
        "the same JSON batch in queue mode (packed into messages; the queue is down, so then inline)",
    ),
    (
        "batch-ndjson",
        "webhook",
        "a 6 MiB NDJSON batch of 20,000 rows",
    ),
    (
        "batch-csv",
        "webhook",
        "a CSV batch at the cell limit (200,000 cells, 20,000 rows)",
    ),
    (
        "batch-csv-flood",
        "webhook",
        "a 6 MiB CSV of one-character cells (refused at the limit)",
    ),
    (
        "callback",
        "import-callback",
        "a 256 KiB callback (its limit)",
    ),
    (
        "callback-flood",
        "import-callback",
        "a 6 MiB unauthenticated `a&a&…` (refused)",
    ),
];

fn event(path: &str, content_type: &str, body: &[u8]) -> String {
    json!({
        "version": "2.0",
        "rawPath": path.split('?').next().unwrap(),
        "rawQueryString": path.split_once('?').map_or("", |(_, q)| q),
        "headers": {"content-type": content_type},
        "requestContext": {"http": {"method": "POST", "path": path.split('?').next().unwrap()}},
        "body": base64::engine::general_purpose::STANDARD.encode(body),
        "isBase64Encoded": true
    })
    .to_string()
}

fn rows(n: usize, width: usize) -> Vec<serde_json::Value> {
    (0..n)
        .map(|i| {
            json!({"email": format!("person{i}@example.com"), "first_name": format!("First{i}"),
                   "last_name": format!("Last{i}"), "company": "x".repeat(width)})
        })
        .collect()
}

/// The event of a case.
fn case_event(name: &str) -> String {
    let form = "/webhooks/form?token=local-form-token";
    let batch = "/webhooks/import?token=local-import-token";
    match name {
        "baseline" => json!({"version": "2.0", "rawPath": "/health", "rawQueryString": "",
                             "headers": {}, "requestContext": {"http": {"method": "GET", "path": "/health"}}})
        .to_string(),
        "json" => {
            let body = json!({"email": "ada@example.com", "message": "x".repeat(1_000_000)});
            event(form, "application/json", body.to_string().as_bytes())
        }
        "form" => {
            let mut body = String::from("email=ada%40example.com");
            while body.len() < 1_000_000 {
                body.push_str(&format!("&f{}={}", body.len(), "y".repeat(215)));
            }
            event(form, "application/x-www-form-urlencoded", body.as_bytes())
        }
        "multipart" => {
            let mut body = String::new();
            body.push_str("--b\r\nContent-Disposition: form-data; name=\"email\"\r\n\r\nada@example.com\r\n");
            body.push_str("--b\r\nContent-Disposition: form-data; name=\"message\"\r\n\r\n");
            body.push_str(&"z".repeat(900_000));
            body.push_str("\r\n--b--\r\n");
            event(form, "multipart/form-data; boundary=b", body.as_bytes())
        }
        "batch-json" => {
            let body = serde_json::to_vec(&rows(20_000, 190)).unwrap();
            event(batch, "application/json", &body)
        }
        "batch-json-queue" => case_event("batch-json"),
        "batch-ndjson-rows" => {
            let body: String = (0..25_000)
                .map(|i| format!("{{\"email\":\"person{i}@example.com\",\"first_name\":\"F{i}\"}}\n"))
                .collect();
            event(batch, "application/x-ndjson", body.as_bytes())
        }
        "batch-ndjson" => {
            let body: String = rows(20_000, 190)
                .iter()
                .map(|r| format!("{r}\n"))
                .collect();
            event(batch, "application/x-ndjson", body.as_bytes())
        }
        "batch-csv" => {
            // 10 columns × 20,000 rows = 200,000 cells, the limit.
            let header = (0..9).map(|i| format!("c{i}")).collect::<Vec<_>>().join(",");
            let mut body = format!("Email,{header}\n");
            for i in 0..20_000 {
                body.push_str(&format!("p{i}@example.com,{}\n", vec!["v".repeat(24); 9].join(",")));
            }
            event(batch, "text/csv", body.as_bytes())
        }
        "batch-csv-flood" => {
            let header = (0..500).map(|i| format!("c{i}")).collect::<Vec<_>>().join(",");
            let row = vec!["a"; 500].join(",");
            let mut body = format!("{header}\n");
            while body.len() < 6 * 1024 * 1024 - 2_000 {
                body.push_str(&row);
                body.push('\n');
            }
            event(batch, "text/csv", body.as_bytes())
        }
        "callback" => {
            let failures: Vec<String> = (0..5_000).map(|i| format!("person{i}@example.com")).collect();
            let mut body = json!({"params": [{"key": "ref", "value": "queue-x"}], "failure": failures}).to_string();
            body.truncate(MAX_CALLBACK_BODY_BYTES - 10);
            event("/?ref=queue-x", "application/json", body.as_bytes())
        }
        "callback-flood" => event("/", "application/x-www-form-urlencoded", "a&".repeat(3 << 20).as_bytes()),
        other => panic!("no case {other}"),
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// One case, in this process, its event read from `path` (made by the parent, so that the
/// peak is the function's alone): prints `peak_kib status`.
fn run_case(path: &str, function: &str) {
    let raw = std::fs::read_to_string(path).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = runtime.block_on(async {
        let secret = support::local_secret_json("http://127.0.0.1:9");
        let request = lambda::from_json(&raw).unwrap();
        drop(raw);
        let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
        match function {
            "import-callback" => {
                let app = CallbackApp::new(
                    None,
                    std::sync::Arc::new(ac_webhook_sync::secret::SecretCache::new(
                        ac_webhook_sync::secret::FixedSecret(secret),
                        Duration::from_secs(300),
                    )),
                    support::fast_client(),
                    None,
                );
                app.handle(&request, deadline).await.status.as_u16()
            }
            _ => {
                let mut app = support::app_with(
                    ac_webhook_sync::secret::FixedSecret(secret),
                    support::fast_client(),
                    6 << 20,
                );
                if function == "webhook-queue" {
                    app =
                        app.with_queue(std::sync::Arc::new(
                            ac_webhook_sync::aws::sqs::SqsQueue::new(
                                aws_sdk_sqs::Client::from_conf(
                                    aws_sdk_sqs::Config::builder()
                                        .behavior_version(
                                            aws_sdk_sqs::config::BehaviorVersion::latest(),
                                        )
                                        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
                                        .credentials_provider(
                                            aws_sdk_sqs::config::Credentials::new(
                                                "test", "test", None, None, "bench",
                                            ),
                                        )
                                        .endpoint_url("http://127.0.0.1:9")
                                        .build(),
                                ),
                                "http://127.0.0.1:9/queue/contacts",
                            ),
                        ));
                }
                app.handle(&request, deadline).await.status.as_u16()
            }
        }
    });
    println!("{} {status}", peak_rss_kib());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--case") {
        run_case(&args[i + 1], &args[i + 2]);
        return;
    }
    let me = std::env::current_exe().unwrap();
    let dir = std::env::temp_dir().join(format!("acws-memory-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    println!("| function | case | answer | peak RSS |");
    println!("|---|---|---|---|");
    for (name, function, what) in CASES {
        let path = dir.join(format!("{name}.json"));
        std::fs::write(&path, case_event(name)).unwrap();
        let output = Command::new(&me)
            .args(["--case", path.to_str().unwrap(), function])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        let mut fields = text.split_whitespace();
        let kib: u64 = fields.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        let status = fields.next().unwrap_or("?");
        let function = function.trim_end_matches("-queue");
        println!(
            "| {function} | {what} | {status} | {:.1} MiB |",
            kib as f64 / 1024.0
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

//! A real Secrets Manager-compatible server (moto) for tests: started on a free port,
//! stopped when dropped. Installed into .venv by scripts/tools.sh.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Moto {
    child: Child,
    pub endpoint: String,
}

fn moto_binary() -> PathBuf {
    if let Ok(path) = std::env::var("MOTO_SERVER") {
        return PathBuf::from(path);
    }
    let local = super::repo_path(".venv/bin/moto_server");
    if local.exists() {
        return local;
    }
    PathBuf::from("moto_server")
}

/// The SQS queue at `url`, as the functions take it.
pub fn sqs_queue(
    client: aws_sdk_sqs::Client,
    url: impl Into<String>,
) -> std::sync::Arc<dyn ac_webhook_sync::delivery::ContactQueue> {
    std::sync::Arc::new(ac_webhook_sync::aws::sqs::SqsQueue::new(client, url))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Moto {
    pub fn start() -> Self {
        let port = free_port();
        let binary = moto_binary();
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e}. Run scripts/tools.sh (or scripts/test.sh) first.",
                    binary.display()
                )
            });
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "moto_server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fails every SQS request after the first `ok` with a connection-like error before it is
/// sent (an SDK interceptor): a queue that goes down part-way through a run of sends.
#[derive(Debug)]
pub struct FailAfter {
    ok: usize,
    seen: std::sync::atomic::AtomicUsize,
}

impl aws_sdk_sqs::config::Intercept for FailAfter {
    fn name(&self) -> &'static str {
        "FailAfter"
    }

    fn read_before_transmit(
        &self,
        _context: &aws_sdk_sqs::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_sdk_sqs::config::RuntimeComponents,
        _config: &mut aws_sdk_sqs::config::ConfigBag,
    ) -> Result<(), aws_sdk_sqs::error::BoxError> {
        let seen = self.seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if seen < self.ok {
            Ok(())
        } else {
            Err("queue went down (test fault)".into())
        }
    }
}

/// An SQS client of moto at `endpoint` with `fault` between it and the server.
fn sqs_config(endpoint: &str) -> aws_sdk_sqs::config::Builder {
    use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
    aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .endpoint_url(endpoint)
}

/// An SQS client of moto at `endpoint`.
#[allow(dead_code)]
pub fn sqs_client(endpoint: &str) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::from_conf(sqs_config(endpoint).build())
}

fn sqs_with(
    endpoint: &str,
    fault: impl aws_sdk_sqs::config::Intercept + 'static,
) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::from_conf(sqs_config(endpoint).interceptor(fault).build())
}

/// An SQS client of moto at `endpoint` whose requests fail after the first `ok`.
pub fn sqs_failing_after(endpoint: &str, ok: usize) -> aws_sdk_sqs::Client {
    sqs_with(
        endpoint,
        FailAfter {
            ok,
            seen: Default::default(),
        },
    )
}

/// SQS that takes all but the last entry of the first `SendMessageBatch` (it answers that
/// entry failed, as SQS does for an entry it refuses) and then goes down: a request taken in
/// part, whose retry fails.
#[derive(Debug, Default)]
pub struct TakesAllButOne {
    requests: std::sync::atomic::AtomicUsize,
    ids: std::sync::Mutex<Vec<String>>,
}

impl aws_sdk_sqs::config::Intercept for TakesAllButOne {
    fn name(&self) -> &'static str {
        "TakesAllButOne"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_sqs::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_sdk_sqs::config::RuntimeComponents,
        _config: &mut aws_sdk_sqs::config::ConfigBag,
    ) -> Result<(), aws_sdk_sqs::error::BoxError> {
        if self
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            > 0
        {
            return Err("queue went down (test fault)".into());
        }
        let body: serde_json::Value = context
            .request()
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or_default();
        *self.ids.lock().unwrap() = body["Entries"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["Id"].as_str().map(str::to_string))
            .collect();
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut aws_sdk_sqs::config::interceptors::BeforeDeserializationInterceptorContextMut<
            '_,
        >,
        _components: &aws_sdk_sqs::config::RuntimeComponents,
        _config: &mut aws_sdk_sqs::config::ConfigBag,
    ) -> Result<(), aws_sdk_sqs::error::BoxError> {
        let ids = self.ids.lock().unwrap().clone();
        let Some((last, taken)) = ids.split_last() else {
            return Ok(());
        };
        let answer = serde_json::json!({
            "Successful": taken.iter().map(|id| serde_json::json!({
                "Id": id, "MessageId": format!("m-{id}"), "MD5OfMessageBody": "00"
            })).collect::<Vec<_>>(),
            "Failed": [{"Id": last, "SenderFault": false, "Code": "InternalError", "Message": "test"}],
        });
        *context.response_mut().body_mut() =
            aws_smithy_types::body::SdkBody::from(answer.to_string());
        Ok(())
    }
}

/// An SQS client of moto at `endpoint` that takes all but one entry of its first request.
pub fn sqs_taking_all_but_one(endpoint: &str) -> aws_sdk_sqs::Client {
    sqs_with(endpoint, TakesAllButOne::default())
}

/// A DynamoDB client of moto at `endpoint`.
fn dynamodb_client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// A DynamoDB client of moto at `endpoint`, and a new on-demand table `name` on it keyed by
/// the string attribute `key`, with `index` (a global secondary index, keys only) if given.
async fn dynamodb_table(
    endpoint: &str,
    name: &str,
    key: &str,
    index: Option<aws_sdk_dynamodb::types::GlobalSecondaryIndex>,
    index_attributes: Vec<aws_sdk_dynamodb::types::AttributeDefinition>,
) -> aws_sdk_dynamodb::Client {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let client = dynamodb_client(endpoint);
    let schema = KeySchemaElement::builder()
        .attribute_name(key)
        .key_type(KeyType::Hash);
    let attribute = AttributeDefinition::builder()
        .attribute_name(key)
        .attribute_type(ScalarAttributeType::S);
    client
        .create_table()
        .table_name(name)
        .key_schema(schema.build().unwrap())
        .set_attribute_definitions(Some(
            std::iter::once(attribute.build().unwrap())
                .chain(index_attributes)
                .collect(),
        ))
        .set_global_secondary_indexes(index.map(|i| vec![i]))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    client
}

/// The import table's sparse index of open imports, as the template defines it.
fn open_imports_index() -> (
    aws_sdk_dynamodb::types::GlobalSecondaryIndex,
    Vec<aws_sdk_dynamodb::types::AttributeDefinition>,
) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
        ProjectionType, ScalarAttributeType,
    };
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    };
    let index = GlobalSecondaryIndex::builder()
        .index_name(ac_webhook_sync::aws::dynamodb::OPEN_INDEX)
        .key_schema(key("open", KeyType::Hash))
        .key_schema(key("submitted_at", KeyType::Range))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::KeysOnly)
                .build(),
        )
        .build()
        .unwrap();
    let attribute = |name: &str, kind| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(kind)
            .build()
            .unwrap()
    };
    (
        index,
        vec![
            attribute("open", ScalarAttributeType::S),
            attribute("submitted_at", ScalarAttributeType::N),
        ],
    )
}

/// The import table (`ref` as its key, as the template makes it), created on moto.
pub async fn import_table(
    endpoint: &str,
) -> std::sync::Arc<ac_webhook_sync::aws::dynamodb::ImportTable> {
    let (index, attributes) = open_imports_index();
    let client = dynamodb_table(endpoint, "imports", "ref", Some(index), attributes).await;
    std::sync::Arc::new(ac_webhook_sync::aws::dynamodb::ImportTable::new(
        client, "imports",
    ))
}

/// How many imports the import table's sparse index of open imports holds on moto.
pub async fn open_imports(endpoint: &str) -> usize {
    dynamodb_client(endpoint)
        .query()
        .table_name("imports")
        .index_name(ac_webhook_sync::aws::dynamodb::OPEN_INDEX)
        .key_condition_expression("#open = :open")
        .expression_attribute_names("#open", "open")
        .expression_attribute_values(
            ":open",
            aws_sdk_dynamodb::types::AttributeValue::S("open".into()),
        )
        .send()
        .await
        .unwrap()
        .items()
        .len()
}

/// The idempotency table (`id` as its key, as the template makes it), created on moto.
pub async fn idempotency_table(
    endpoint: &str,
) -> std::sync::Arc<ac_webhook_sync::aws::dynamodb::IdempotencyTable> {
    let client = dynamodb_table(endpoint, "idempotency", "id", None, Vec::new()).await;
    std::sync::Arc::new(ac_webhook_sync::aws::dynamodb::IdempotencyTable::new(
        client,
        "idempotency",
    ))
}

/// A plain SQS client of moto at `endpoint` and a new queue `name` on it.
pub async fn sqs(endpoint: &str, name: &str) -> (aws_sdk_sqs::Client, String) {
    use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
    let client = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
            .endpoint_url(endpoint)
            .build(),
    );
    let url = client
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    (client, url)
}

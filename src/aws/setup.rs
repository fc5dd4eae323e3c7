//! Each function built from its settings: where the core's seams (secret source, queue,
//! import store) get their AWS implementations. Nothing here touches the network: every
//! client is built on its first call.

use crate::captcha::CaptchaVerifier;
use crate::lookup::SenderApis;
use std::sync::Arc;

use crate::activecampaign::ActiveCampaignClient;
use crate::aws::LazyClient;
use crate::aws::dynamodb::{IdempotencyTable, ImportTable};
use crate::aws::secrets_manager::SecretsManager;
use crate::aws::sqs::SqsQueue;
use crate::delivery::{ContactQueue, IdempotencyStore, ImportStore, InlineDelivery, RetrySchedule};
use crate::functions::StartupError;
use crate::functions::import_callback::{CallbackApp, DEFAULT_MAX_IMPORT_GENERATIONS};
use crate::functions::import_reconciler::Reconciler;
use crate::functions::sync_worker::SyncWorker;
use crate::functions::webhook::{Limits, WebhookApp};
use crate::mapping::Mapping;
use crate::secret::{SecretCache, SecretFile};
use crate::settings::{DeliveryMode, SecretLocation, Settings};

/// The secret cache and the ActiveCampaign client every function builds the same way.
pub fn secrets_and_client(
    settings: &Settings,
) -> Result<(Arc<SecretCache>, ActiveCampaignClient), StartupError> {
    let cache = match &settings.secret {
        SecretLocation::File(path) => {
            SecretCache::new(SecretFile(path.clone()), settings.secret_ttl)
        }
        SecretLocation::SecretsManager(id) => SecretCache::new(
            SecretsManager::new(LazyClient::from_environment(), id.clone()),
            settings.secret_ttl,
        ),
    };
    let client = ActiveCampaignClient::new(settings.client.clone())?;
    Ok((Arc::new(cache), client))
}

/// The SQS queue at `url`.
fn sqs_queue(url: &String) -> Arc<dyn ContactQueue> {
    Arc::new(SqsQueue::from_environment(url))
}

/// The idempotency table named by `IDEMPOTENCY_TABLE`, if any.
fn idempotency_table(settings: &Settings) -> Option<Arc<dyn IdempotencyStore>> {
    let table = settings.idempotency_table.as_ref()?;
    Some(Arc::new(IdempotencyTable::new(
        LazyClient::from_environment(),
        table,
    )))
}

/// The import table named by `IMPORTS_TABLE`, if any.
fn import_table(settings: &Settings) -> Option<Arc<dyn ImportStore>> {
    let table = settings.imports_table.as_ref()?;
    Some(Arc::new(ImportTable::new(
        LazyClient::from_environment(),
        table,
    )))
}

/// The mapping: `MAPPING_FILE`, or the one bundled with the build.
fn load_mapping(settings: &Settings) -> Result<Mapping, StartupError> {
    match &settings.mapping_file {
        Some(path) => {
            let source =
                std::fs::read_to_string(path).map_err(|source| StartupError::MappingFile {
                    path: path.display().to_string(),
                    source,
                })?;
            Ok(Mapping::from_toml(&source)?)
        }
        None => Ok(Mapping::bundled()?),
    }
}

impl WebhookApp {
    /// Builds the app from settings. Nothing here touches the network: the secret is read on
    /// the first request that needs it.
    pub fn from_settings(settings: &Settings) -> Result<Self, StartupError> {
        settings.check_imports_callback()?;
        let mapping = load_mapping(settings)?;
        let (secrets, client) = secrets_and_client(settings)?;
        let captcha = mapping
            .routes()
            .any(|route| route.guard.captcha.is_some())
            .then(|| CaptchaVerifier::new(settings.captcha_siteverify_url.clone()))
            .transpose()?;
        let app = Self::new(
            mapping,
            secrets,
            client,
            Limits {
                max_body_bytes: settings.max_body_bytes,
                invocation_budget: settings.invocation_budget,
            },
        );
        let mut app = app
            .with_callback_url(settings.callback_url.clone())
            .with_import_store(import_table(settings))
            .with_dead_letters(settings.dead_letter_queue.as_ref().map(sqs_queue));
        if let Some(store) = idempotency_table(settings) {
            app = app.with_idempotency_store(store);
        }
        if let Some(verifier) = captcha {
            app = app.with_captcha_verifier(verifier);
        }
        app = app.with_sender_apis(SenderApis::new(settings.sender_api_url.clone())?);
        Ok(match &settings.delivery {
            DeliveryMode::Inline => app,
            DeliveryMode::Queue(url) => app.with_queue(sqs_queue(url)),
        })
    }
}

impl SyncWorker {
    pub fn from_settings(settings: &Settings) -> Result<Self, StartupError> {
        settings.check_imports_callback()?;
        let (secrets, client) = secrets_and_client(settings)?;
        let dead_letters = settings.dead_letter_queue.as_ref().map(sqs_queue);
        let store = import_table(settings);
        let source_queue = settings.queue_url.as_ref().map(sqs_queue);
        let worker = Self::new(
            InlineDelivery::new(client, secrets.clone()).with_import_store(store),
            secrets,
            dead_letters,
            settings.max_receive_count,
        )
        .with_callback_url(settings.callback_url.clone())
        .with_source_queue(source_queue, {
            let defaults = RetrySchedule::default();
            RetrySchedule {
                base: settings.retry_base.unwrap_or(defaults.base),
                max: settings.retry_max.unwrap_or(defaults.max),
            }
        })
        .with_invocation_budget(settings.invocation_budget)
        // Ids-only senders' references are looked up and mapped here.
        .with_lookups(
            Arc::new(load_mapping(settings)?),
            SenderApis::new(settings.sender_api_url.clone())?,
        );
        Ok(match idempotency_table(settings) {
            Some(store) => worker.with_idempotency_store(store),
            None => worker,
        })
    }
}

impl CallbackApp {
    pub fn from_settings(settings: &Settings) -> Result<Self, StartupError> {
        let (secrets, client) = secrets_and_client(settings)?;
        let queue = match &settings.delivery {
            DeliveryMode::Queue(url) => Some(sqs_queue(url)),
            DeliveryMode::Inline => None,
        };
        Ok(
            Self::new(import_table(settings), secrets, client, queue).with_dead_letters(
                settings.dead_letter_queue.as_ref().map(sqs_queue),
                DEFAULT_MAX_IMPORT_GENERATIONS,
            ),
        )
    }
}

impl Reconciler {
    pub fn from_settings(settings: &Settings) -> Result<Self, StartupError> {
        if settings.imports_table.is_none() {
            return Err(StartupError::Config(
                crate::settings::ConfigError::Invalid {
                    name: crate::settings::ENV_IMPORTS_TABLE,
                    value: String::new(),
                    expected: "the imports table to reconcile",
                },
            ));
        }
        Ok(Self::new(
            CallbackApp::from_settings(settings)?,
            settings.reconcile_min_age,
        ))
    }
}

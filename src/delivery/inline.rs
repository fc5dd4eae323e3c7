//! Inline delivery: `contact_sync` within the invocation, with the secret refreshed once when
//! ActiveCampaign refuses the key and without re-subscribing anyone who unsubscribed.

use std::borrow::Cow;
use std::sync::Arc;

use tokio::time::Instant;

use super::{DeliveryError, DeliveryOutcome};

use super::ImportStore;
use crate::activecampaign::contact_sync::{ListMembership, ListStatus};
use crate::activecampaign::{
    AcError, Account, ActiveCampaignClient, ContactSync, ListLookup, SyncAnswer,
};
use crate::secret::{AppSecret, SecretCache, before_deadline};

/// Synchronous delivery to ActiveCampaign within the invocation.
#[derive(Clone)]
pub struct InlineDelivery {
    client: ActiveCampaignClient,
    secrets: Arc<SecretCache>,
    /// Where bulk imports are recorded for their callback.
    imports: Option<Arc<dyn ImportStore>>,
}

impl InlineDelivery {
    pub fn new(client: ActiveCampaignClient, secrets: Arc<SecretCache>) -> Self {
        Self {
            client,
            secrets,
            imports: None,
        }
    }

    /// Records every bulk import in `store`, for the import-callback function.
    pub fn with_import_store(mut self, store: Option<Arc<dyn ImportStore>>) -> Self {
        self.imports = store;
        self
    }

    pub(crate) fn imports(&self) -> Option<&dyn ImportStore> {
        self.imports.as_deref()
    }

    pub(crate) fn client(&self) -> &ActiveCampaignClient {
        &self.client
    }

    pub(crate) fn secrets(&self) -> &SecretCache {
        &self.secrets
    }

    /// Syncs the contact. When ActiveCampaign refuses the key, the secret is read again once
    /// (it may have been rotated) before giving up.
    pub async fn deliver(
        &self,
        contact: &ContactSync,
        secret: Arc<AppSecret>,
        deadline: Instant,
    ) -> Result<DeliveryOutcome, DeliveryError> {
        let mut secret = secret;
        let mut refreshed = false;
        loop {
            let account = Account {
                api_url: &secret.api_url,
                api_key: &secret.api_key,
            };
            match self.sync(account, contact, deadline).await {
                Ok(SyncAnswer::Synced { subscriber_id }) => {
                    return Ok(DeliveryOutcome::Synced { subscriber_id });
                }
                Ok(SyncAnswer::Refused { message }) => {
                    return Ok(DeliveryOutcome::Rejected { reason: message });
                }
                Err(AcError::Unauthorized { status }) if !refreshed => {
                    refreshed = true;
                    tracing::warn!(
                        status,
                        "ActiveCampaign refused the API key; reading the secret again."
                    );
                    let fresh = before_deadline(deadline, self.secrets.refresh(&secret)).await?;
                    if fresh.same_account(&secret) {
                        return Err(AcError::Unauthorized { status }.into());
                    }
                    secret = fresh;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    async fn sync(
        &self,
        account: Account<'_>,
        contact: &ContactSync,
        deadline: Instant,
    ) -> Result<SyncAnswer, AcError> {
        let contact = self
            .without_resubscriptions(account, contact, deadline)
            .await?;
        self.client.contact_sync(account, &contact, deadline).await
    }

    /// `status=1` re-subscribes a contact who unsubscribed (and overwrites a bounce or a
    /// pending double opt-in). On routes that are not explicit opt-ins, the contact's
    /// statuses are looked up first and only lists where they are already active, or where
    /// they are unknown to ActiveCampaign, keep their subscribe. Fails closed: when the
    /// statuses cannot be read within half the remaining time, every such subscribe is left
    /// out (the rest of the contact is synced) and the log says why.
    async fn without_resubscriptions<'c>(
        &self,
        account: Account<'_>,
        contact: &'c ContactSync,
        deadline: Instant,
    ) -> Result<Cow<'c, ContactSync>, AcError> {
        let guarded = |l: &ListMembership| l.status == ListStatus::Active && !l.may_resubscribe;
        if !contact.lists.iter().any(guarded) {
            return Ok(Cow::Borrowed(contact));
        }
        // The lookup may use half the time left, so the sync itself keeps the other half.
        let now = Instant::now();
        let lookup_deadline = now + deadline.saturating_duration_since(now) / 2;
        let statuses = match self
            .client
            .list_statuses(account, &contact.email, lookup_deadline)
            .await
        {
            Ok(ListLookup::NotFound) => return Ok(Cow::Borrowed(contact)),
            Ok(ListLookup::Found(statuses)) => Some(statuses),
            Err(error @ AcError::Unauthorized { .. }) => return Err(error),
            Err(AcError::Unavailable { reason, .. }) => {
                tracing::warn!(
                    reason = %reason,
                    "List statuses unreadable; syncing without the subscribes they guard."
                );
                None
            }
        };
        let mut filtered = contact.clone();
        filtered.lists.retain(|l| {
            if !guarded(l) {
                return true;
            }
            let current = statuses.as_ref().map(|s| s.get(&l.list_id));
            match current {
                // Not on the list yet: subscribing cannot overwrite anything.
                Some(None) => true,
                Some(Some(status)) if status.allows_subscribe() => true,
                Some(Some(status)) => {
                    tracing::info!(list_id = l.list_id, status = ?status, "Contact is not active on this list; not subscribing.");
                    false
                }
                None => false,
            }
        });
        Ok(Cow::Owned(filtered))
    }
}

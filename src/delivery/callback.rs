//! The contract between a bulk import and its callback: the reference that names the
//! import's record, the token that lets only this deployment's callbacks in, and where they
//! ride (query, params, a header). Delivery makes them; the import-callback function checks
//! them.

use secrecy::ExposeSecret;

use crate::activecampaign::importer::{ImportCallback, KeyValue};
use crate::secret::SecretError;

/// Parameter and header names the callback carries back.
pub const CALLBACK_REF_PARAM: &str = "ref";
pub const CALLBACK_ROUTE_PARAM: &str = "route";
pub const CALLBACK_TOKEN_PARAM: &str = "token";
pub const CALLBACK_TOKEN_HEADER: &str = "X-Import-Token";

/// The callback token for a reference: HMAC-SHA256 with the deployment's `callback_secret`,
/// so only this deployment can produce one.
pub fn callback_token(secret: &secrecy::SecretString, reference: &str) -> String {
    hex::encode(crate::crypto::hmac_sha256(
        secret.expose_secret().as_bytes(),
        &[reference.as_bytes()],
    ))
}

/// Where imports report completion, and the secret that signs their references.
#[derive(Clone)]
pub struct CallbackTarget {
    pub url: String,
    pub secret: secrecy::SecretString,
}

impl CallbackTarget {
    /// A target when both the URL and the deployment's `callback_secret` are known.
    pub fn from(url: Option<&String>, secret: Option<&secrecy::SecretString>) -> Option<Self> {
        Some(Self {
            url: url?.clone(),
            secret: secret?.clone(),
        })
    }

    /// Like [`CallbackTarget::from`], but a callback URL without the secret to sign its
    /// token is an error naming the key: imports would otherwise be made without a callback
    /// and never settle by it.
    pub fn required(
        url: Option<&String>,
        secret: Option<&secrecy::SecretString>,
    ) -> Result<Option<Self>, SecretError> {
        match (url, secret) {
            (Some(_), None) => Err(SecretError::Malformed(
                "callback_secret is missing: bulk imports need it to sign their callback (add it to the secret)".into(),
            )),
            _ => Ok(Self::from(url, secret)),
        }
    }
}

/// A callback for one bulk import from `route`, under a fresh reference.
pub fn import_callback(url: &str, secret: &secrecy::SecretString, route: &str) -> ImportCallback {
    let reference = format!(
        "{route}-{:016x}{:016x}",
        fastrand::u64(..),
        fastrand::u64(..)
    );
    let token = callback_token(secret, &reference);
    let pair = |key: &str, value: &str| KeyValue {
        key: key.to_string(),
        value: value.to_string(),
    };
    // The reference also rides in the URL's query, so the callback function can check the
    // token (a header) before it reads the body at all.
    let separator = if url.contains('?') { '&' } else { '?' };
    ImportCallback {
        url: format!("{url}{separator}{CALLBACK_REF_PARAM}={reference}"),
        request_type: "POST".to_string(),
        detailed_results: "true".to_string(),
        params: vec![
            pair(CALLBACK_REF_PARAM, &reference),
            pair(CALLBACK_ROUTE_PARAM, route),
            pair(CALLBACK_TOKEN_PARAM, &token),
        ],
        headers: vec![pair(CALLBACK_TOKEN_HEADER, &token)],
    }
}

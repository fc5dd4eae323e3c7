//! Shared pieces of webhook verification: HMAC-SHA256, tag decoding, constant-time
//! comparison against every secret of a route (rotation), and replay windows.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::prelude::*;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::AuthError;
use crate::inbound::InboundRequest;

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 of the concatenated parts, keyed by `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length, so construction cannot fail.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Constant-time equality of two byte strings (length is not secret).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// How a sender encodes its signature tag.
#[derive(Debug, Clone, Copy)]
pub enum TagEncoding {
    Base64,
    Hex,
}

impl TagEncoding {
    /// Decodes a tag; `None` when it is not valid in this encoding (so it cannot match).
    pub fn decode(self, tag: &str) -> Option<Vec<u8>> {
        let tag = tag.trim();
        match self {
            TagEncoding::Base64 => BASE64_STANDARD.decode(tag).ok(),
            // Hex is compared case-insensitively by decoding it.
            TagEncoding::Hex => hex::decode(tag).ok(),
        }
    }
}

/// Verifies that any of `tags` equals HMAC-SHA256(secret, parts) for any of the route's secrets.
///
/// Every secret is tried against every tag, so a rotation can hold old and new secrets at
/// once and a sender can send several signatures in one header.
pub fn verify_hmac_any(
    secrets: &[SecretString],
    parts: &[&[u8]],
    tags: &[&str],
    encoding: TagEncoding,
) -> Result<(), AuthError> {
    if secrets.is_empty() {
        return Err(AuthError::NoSecretConfigured);
    }
    let decoded: Vec<Vec<u8>> = tags.iter().filter_map(|t| encoding.decode(t)).collect();
    if decoded.is_empty() {
        return Err(AuthError::MalformedSignature);
    }
    let mut matched = false;
    for secret in secrets {
        let expected = hmac_sha256(secret.expose_secret().as_bytes(), parts);
        for tag in &decoded {
            // No early exit: the work done does not depend on which secret matched.
            matched |= constant_time_eq(&expected, tag);
        }
    }
    if matched {
        Ok(())
    } else {
        Err(AuthError::SignatureMismatch)
    }
}

/// For senders that sign the raw body alone and send one tag in one header.
pub fn verify_raw_body_signature(
    req: &InboundRequest,
    secrets: &[SecretString],
    header: &str,
    header_display_name: &'static str,
    encoding: TagEncoding,
) -> Result<(), AuthError> {
    let tag = req
        .header(header)
        .ok_or(AuthError::MissingSignature(header_display_name))?;
    verify_hmac_any(secrets, &[&req.body], &[tag], encoding)
}

/// Checks a sender's Unix timestamp (seconds) against the replay window around `now`.
pub fn check_replay_window(
    timestamp_secs: i64,
    now: SystemTime,
    window: Duration,
) -> Result<(), AuthError> {
    let now_secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let skew = now_secs.saturating_sub(timestamp_secs).unsigned_abs();
    if skew > window.as_secs() {
        return Err(AuthError::StaleTimestamp);
    }
    Ok(())
}

/// Compares a presented route token with the route's secrets in constant time.
pub fn verify_token(secrets: &[SecretString], presented: Option<&str>) -> Result<(), AuthError> {
    if secrets.is_empty() {
        return Err(AuthError::NoSecretConfigured);
    }
    let presented = presented.ok_or(AuthError::MissingToken)?;
    let mut matched = false;
    for secret in secrets {
        matched |= constant_time_eq(secret.expose_secret().as_bytes(), presented.as_bytes());
    }
    if matched {
        Ok(())
    } else {
        Err(AuthError::TokenMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(values: &[&str]) -> Vec<SecretString> {
        values
            .iter()
            .map(|v| SecretString::from(v.to_string()))
            .collect()
    }

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let tag = hmac_sha256(b"Jefe", &[b"what do ya ", b"want for nothing?"]);
        assert_eq!(
            hex::encode(tag),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn any_secret_and_any_tag_may_match() {
        let tag = hex::encode(hmac_sha256(b"new", &[b"body"]));
        let both = secrets(&["old", "new"]);
        assert!(verify_hmac_any(&both, &[b"body"], &["00ff", &tag], TagEncoding::Hex).is_ok());
        assert!(
            verify_hmac_any(&both, &[b"body"], &[&tag.to_uppercase()], TagEncoding::Hex).is_ok()
        );
        assert_eq!(
            verify_hmac_any(&secrets(&["old"]), &[b"body"], &[&tag], TagEncoding::Hex),
            Err(AuthError::SignatureMismatch)
        );
        assert_eq!(
            verify_hmac_any(&both, &[b"body"], &["not hex"], TagEncoding::Hex),
            Err(AuthError::MalformedSignature)
        );
        assert_eq!(
            verify_hmac_any(&[], &[b"body"], &[&tag], TagEncoding::Hex),
            Err(AuthError::NoSecretConfigured)
        );
    }

    #[test]
    fn replay_window_is_symmetric() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let window = Duration::from_secs(300);
        assert!(check_replay_window(1_000_000 - 300, now, window).is_ok());
        assert!(check_replay_window(1_000_000 + 300, now, window).is_ok());
        assert_eq!(
            check_replay_window(1_000_000 - 301, now, window),
            Err(AuthError::StaleTimestamp)
        );
        assert_eq!(
            check_replay_window(1_000_000 + 301, now, window),
            Err(AuthError::StaleTimestamp)
        );
    }

    #[test]
    fn token_comparison() {
        let route = secrets(&["a-long-token", "rotated-token"]);
        assert!(verify_token(&route, Some("rotated-token")).is_ok());
        assert_eq!(
            verify_token(&route, Some("a-long-toke")),
            Err(AuthError::TokenMismatch)
        );
        assert_eq!(verify_token(&route, None), Err(AuthError::MissingToken));
    }
}

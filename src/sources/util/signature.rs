//! Shared pieces of webhook verification: HMAC-SHA256, tag decoding, constant-time
//! comparison against every secret of a route (rotation), and replay windows.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::prelude::*;
use secrecy::{ExposeSecret, SecretString};

pub use crate::crypto::{constant_time_eq, hmac_sha256};
use crate::inbound::InboundRequest;
use crate::sources::{AuthError, AuthSettings};

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

    /// Encodes a tag as a sender would send it (tests and fuzzing sign with it).
    #[cfg(any(test, feature = "testing"))]
    pub fn encode(self, tag: &[u8]) -> String {
        match self {
            TagEncoding::Base64 => BASE64_STANDARD.encode(tag),
            TagEncoding::Hex => hex::encode(tag),
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

/// The parts of a Stripe-style signature header that matter: the timestamp and every `v1`.
#[derive(Debug, PartialEq)]
pub struct TimestampedHeader<'a> {
    pub timestamp: i64,
    pub v1: Vec<&'a str>,
}

/// Parses `t=…,v1=…[,v1=…][,v0=…]`; unknown schemes (Stripe's test-mode `v0`) are ignored.
pub fn parse_timestamped_header(header: &str) -> Result<TimestampedHeader<'_>, AuthError> {
    parse_timestamped_header_of(header, "v1")
}

/// [`parse_timestamped_header`] with the tags under `scheme` (WPForms writes `v=`).
pub fn parse_timestamped_header_of<'h>(
    header: &'h str,
    scheme: &str,
) -> Result<TimestampedHeader<'h>, AuthError> {
    let mut timestamp = None;
    let mut v1 = Vec::new();
    for item in header.split(',') {
        let Some((key, value)) = item.trim().split_once('=') else {
            continue;
        };
        match key {
            "t" => timestamp = value.parse::<i64>().ok(),
            key if key == scheme => v1.push(value),
            _ => {}
        }
    }
    match timestamp {
        Some(timestamp) if !v1.is_empty() => Ok(TimestampedHeader { timestamp, v1 }),
        _ => Err(AuthError::MalformedSignature),
    }
}

/// Verifies a `t=<unix>,v1=<hex>[,v1=…]` header over `"{t}.{body}"` within the replay window:
/// Stripe's scheme, which Calendly uses too.
pub fn verify_timestamped(
    req: &InboundRequest,
    secrets: &[SecretString],
    settings: &AuthSettings,
    header: &'static str,
) -> Result<(), AuthError> {
    verify_timestamped_of(req, secrets, settings, header, "v1")
}

/// [`verify_timestamped`] with the tags under `scheme`.
pub fn verify_timestamped_of(
    req: &InboundRequest,
    secrets: &[SecretString],
    settings: &AuthSettings,
    header: &'static str,
    scheme: &str,
) -> Result<(), AuthError> {
    let value = req
        .header(header)
        .ok_or(AuthError::MissingSignature(header))?;
    let parsed = parse_timestamped_header_of(value, scheme)?;
    let timestamp = parsed.timestamp.to_string();
    verify_hmac_any(
        secrets,
        &[timestamp.as_bytes(), b".", &req.body],
        &parsed.v1,
        TagEncoding::Hex,
    )?;
    check_replay_window(parsed.timestamp, req.received_at, settings.replay_window)
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

    #[test]
    fn header_parsing() {
        let h = parse_timestamped_header("t=12,v1=aa,v0=bb,v1=cc").unwrap();
        assert_eq!(
            h,
            TimestampedHeader {
                timestamp: 12,
                v1: vec!["aa", "cc"]
            }
        );
        assert_eq!(
            parse_timestamped_header("v1=aa"),
            Err(AuthError::MalformedSignature)
        );
        assert_eq!(
            parse_timestamped_header("t=12"),
            Err(AuthError::MalformedSignature)
        );
        assert_eq!(
            parse_timestamped_header("t=x,v1=aa"),
            Err(AuthError::MalformedSignature)
        );
    }
}

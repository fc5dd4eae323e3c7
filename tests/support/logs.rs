//! Logs captured for a whole test binary (JSON, at DEBUG, the production format), and a
//! guard that fails the test if any secret, signature or unmasked email was ever logged.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use lambda_runtime::tracing::subscriber;
use serde_json::Value;

use super::repo_path;

#[derive(Clone, Default)]
pub struct Captured(pub Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

static CAPTURED: OnceLock<Captured> = OnceLock::new();

/// Installs the binary's capturing subscriber once; every test's logs land in one buffer.
pub fn captured() -> &'static Captured {
    CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        subscriber::fmt()
            .json()
            .with_max_level(lambda_runtime::tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .init();
        captured
    })
}

/// Every secret value in local/secret.json.
pub fn secret_values() -> Vec<String> {
    let raw = std::fs::read_to_string(repo_path("local/secret.json")).unwrap();
    let secret: Value = serde_json::from_str(&raw).unwrap();
    let mut values = vec![
        secret["api_key"].as_str().unwrap().to_string(),
        secret["callback_secret"].as_str().unwrap().to_string(),
    ];
    for value in secret["webhook_secrets"].as_object().unwrap().values() {
        match value {
            Value::Array(items) => {
                values.extend(items.iter().map(|v| v.as_str().unwrap().to_string()))
            }
            other => values.push(other.as_str().unwrap().to_string()),
        }
    }
    values
}

/// Each email address in the logs whose local part is not masked (`a***@example.com` is):
/// an `@` between a local part and a dotted domain, so `Type@0x7f..` debug output is not one.
pub fn unmasked_emails(logs: &str) -> Vec<String> {
    let is_local = |c: char| c.is_alphanumeric() || "._%+-".contains(c);
    let is_domain = |c: char| c.is_alphanumeric() || c == '-';
    logs.match_indices('@')
        .filter(|(at, _)| {
            let local_ok = logs[..*at].chars().next_back().is_some_and(is_local);
            let domain: String = logs[at + 1..]
                .chars()
                .take_while(|&c| is_domain(c) || c == '.')
                .collect();
            let dotted = domain.split('.').filter(|p| !p.is_empty()).count() >= 2;
            local_ok && dotted && !logs[..*at].ends_with("***")
        })
        .map(|(at, _)| {
            let start = logs[..at]
                .char_indices()
                .rev()
                .nth(24)
                .map_or(0, |(i, _)| i);
            let end = logs[at..]
                .char_indices()
                .nth(24)
                .map_or(logs.len(), |(i, _)| at + i);
            logs[start..end].to_string()
        })
        .collect()
}

/// Checks the logs when the test ends, unless it already failed.
pub struct LogGuard {
    sensitive: Vec<String>,
}

/// Starts capturing (once per binary) and returns the guard that checks at the test's end.
pub fn checked() -> LogGuard {
    captured();
    LogGuard {
        sensitive: secret_values(),
    }
}

impl LogGuard {
    /// Something this test sent that must not be logged either (a signature, say).
    pub fn also_secret(&mut self, value: impl Into<String>) {
        let value = value.into();
        if value.len() >= 8 {
            self.sensitive.push(value);
        }
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let logs = captured().text();
        let leaks: Vec<&String> = self
            .sensitive
            .iter()
            .filter(|s| logs.contains(s.as_str()))
            .collect();
        assert!(leaks.is_empty(), "secrets in the logs: {leaks:?}");
        let emails = unmasked_emails(&logs);
        assert!(emails.is_empty(), "unmasked emails in the logs: {emails:?}");
    }
}

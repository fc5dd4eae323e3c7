//! How `ac-sandbox` is started: flags, else `AC_SANDBOX_*` variables, else defaults.

use super::traffic::DEFAULT_REQUESTS_PER_SECOND;
use axum::http::StatusCode;

use super::{DEFAULT_API_KEY, DEFAULT_PORT, Fault, Language, Sandbox, Seed, SeedError};

pub const USAGE: &str = "usage: ac-sandbox [PORT] [--seed FILE] [--rate-limit N] [--fault JSON] [--language en|pt] [--bad-key-status N]
  PORT              AC_SANDBOX_PORT (default 4599; 127.0.0.1 only)
  --seed            AC_SANDBOX_SEED: lists, fields and contacts (default: local/sandbox-seed.toml, compiled in)
  --rate-limit      AC_SANDBOX_RATE_LIMIT: API requests per second before 429 (default 5; 0 = no limit)
  --fault           AC_SANDBOX_FAULT: a fault from the start, e.g. '{\"kind\":\"status\",\"status\":503,\"count\":3}';
                    kinds: status (status, retry_after), slow (delay_ms), empty, html (status),
                    wrong_key (every key refused, as if revoked); count = next N API requests, else until cleared
  --language        AC_SANDBOX_LANGUAGE: en or pt, the language of result_message
  --bad-key-status  AC_SANDBOX_BAD_KEY_STATUS: HTTP status of v1's answer to a wrong or missing key
                    (default 200 with result_code 0, as ActiveCampaign answers; e.g. 403); v3 always answers 403
  the API key is AC_SANDBOX_API_KEY (default local-dev-key)
serves: v1 /admin/api.php (contact_sync, contact_view_email), v3 /api/3/users/me, /api/3/import/bulk_import,
  /api/3/import/info; admin: GET /sandbox/{contacts,lists,tags,fields,imports,state},
  GET|POST|DELETE /sandbox/faults, POST /sandbox/api-key {\"api_key\":\"new\"} (rotate the key)";

#[derive(Debug, Clone)]
pub struct SandboxSettings {
    pub port: u16,
    pub api_key: String,
    pub language: Language,
    pub requests_per_second: u32,
    pub seed: Seed,
    pub fault: Option<Fault>,
    /// The HTTP status of v1's answer to a wrong key (200 by default).
    pub bad_key_status: StatusCode,
}

/// Why the sandbox's settings were refused; each message names the setting and the fix.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// `--help`: the usage is the whole message.
    #[error("{USAGE}")]
    Usage,
    #[error("unknown option {0}\n{USAGE}")]
    UnknownOption(String),
    #[error("{0} needs a value")]
    MissingValue(String),
    #[error("port {0:?} is not a port (AC_SANDBOX_PORT or the first argument)")]
    Port(String),
    #[error("rate limit {0:?} is not a whole number (AC_SANDBOX_RATE_LIMIT or --rate-limit)")]
    RateLimit(String),
    #[error("{path}: {source}")]
    SeedFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Seed {
        path: String,
        #[source]
        source: SeedError,
    },
    #[error("{0} (AC_SANDBOX_FAULT or --fault)")]
    Fault(String),
    #[error("language {0:?}: en or pt")]
    Language(String),
    #[error("bad-key status {0:?}: an HTTP status, 200 to 599")]
    BadKeyStatus(String),
}

impl SandboxSettings {
    /// From the process's arguments and environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_sources(std::env::args().skip(1), |name| std::env::var(name).ok())
    }

    /// From `args` (flags win) and `env` (looked up by name).
    pub fn from_sources(
        args: impl IntoIterator<Item = String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingsError> {
        let mut port = env("AC_SANDBOX_PORT");
        let mut seed = env("AC_SANDBOX_SEED");
        let mut rate = env("AC_SANDBOX_RATE_LIMIT");
        let mut fault = env("AC_SANDBOX_FAULT");
        let mut language = env("AC_SANDBOX_LANGUAGE");
        let mut bad_key_status = env("AC_SANDBOX_BAD_KEY_STATUS");
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let target = match arg.as_str() {
                "--seed" => &mut seed,
                "--rate-limit" => &mut rate,
                "--fault" => &mut fault,
                "--language" => &mut language,
                "--bad-key-status" => &mut bad_key_status,
                "-h" | "--help" => return Err(SettingsError::Usage),
                _ if !arg.starts_with('-') => {
                    port = Some(arg);
                    continue;
                }
                _ => return Err(SettingsError::UnknownOption(arg)),
            };
            *target = Some(
                args.next()
                    .ok_or_else(|| SettingsError::MissingValue(arg.clone()))?,
            );
        }
        let port = match port.filter(|p| !p.is_empty()) {
            Some(p) => p.parse().map_err(|_| SettingsError::Port(p))?,
            None => DEFAULT_PORT,
        };
        let requests_per_second = match rate.filter(|r| !r.is_empty()) {
            Some(r) => r.parse().map_err(|_| SettingsError::RateLimit(r))?,
            None => DEFAULT_REQUESTS_PER_SECOND,
        };
        let seed = match seed.filter(|s| !s.is_empty()) {
            Some(path) => {
                let text = match std::fs::read_to_string(&path) {
                    Ok(text) => text,
                    Err(source) => return Err(SettingsError::SeedFile { path, source }),
                };
                Seed::from_toml(&text).map_err(|source| SettingsError::Seed { path, source })?
            }
            None => Seed::bundled(),
        };
        let fault = match fault.filter(|f| !f.is_empty()) {
            Some(json) => Some(Fault::from_json(json.as_bytes()).map_err(SettingsError::Fault)?),
            None => None,
        };
        let language = match language.as_deref() {
            None | Some("" | "en") => Language::English,
            Some("pt") => Language::Portuguese,
            Some(other) => return Err(SettingsError::Language(other.to_string())),
        };
        let bad_key_status = match bad_key_status.filter(|s| !s.is_empty()) {
            Some(s) => s
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|n| (200..=599).contains(n))
                .and_then(|n| StatusCode::from_u16(n).ok())
                .ok_or_else(|| SettingsError::BadKeyStatus(s.clone()))?,
            None => StatusCode::OK,
        };
        Ok(Self {
            port,
            bad_key_status,
            api_key: env("AC_SANDBOX_API_KEY").unwrap_or_else(|| DEFAULT_API_KEY.into()),
            language,
            requests_per_second,
            seed,
            fault,
        })
    }

    pub fn sandbox(&self) -> Sandbox {
        let sandbox = Sandbox::new(self.api_key.clone(), self.language)
            .with_seed(self.seed.clone())
            .with_rate_limit(self.requests_per_second)
            .with_bad_key_status(self.bad_key_status);
        sandbox.set_fault(self.fault.clone());
        sandbox
    }
}

/// Serves the sandbox on 127.0.0.1 until the process ends.
pub async fn run(settings: SandboxSettings) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", settings.port)).await?;
    let limit = match settings.requests_per_second {
        0 => "no rate limit".to_string(),
        n => format!("{n} requests/s"),
    };
    println!(
        "ActiveCampaign stand-in listening on http://127.0.0.1:{} ({limit}, v1 bad key answered {}, {} lists, {} fields, {} contacts seeded)",
        settings.port,
        settings.bad_key_status.as_u16(),
        settings.seed.lists.len(),
        settings.seed.fields.len(),
        settings.seed.contacts.len()
    );
    super::serve(listener, settings.sandbox()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<SandboxSettings, String> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        SandboxSettings::from_sources(args.iter().map(|a| a.to_string()), |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
        .map_err(|e| e.to_string())
    }

    #[test]
    fn flags_win_over_the_environment() {
        let defaults = parse(&[], &[]).unwrap();
        assert_eq!(defaults.port, DEFAULT_PORT);
        assert_eq!(defaults.requests_per_second, 5);
        assert!(!defaults.seed.contacts.is_empty(), "the bundled seed");
        assert_eq!(defaults.bad_key_status, StatusCode::OK, "as ActiveCampaign");
        let old = parse(&[], &[("AC_SANDBOX_BAD_KEY_STATUS", "403")]).unwrap();
        assert_eq!(old.bad_key_status, StatusCode::FORBIDDEN);
        let flag = parse(
            &["--bad-key-status", "401"],
            &[("AC_SANDBOX_BAD_KEY_STATUS", "403")],
        )
        .unwrap();
        assert_eq!(flag.bad_key_status, StatusCode::UNAUTHORIZED);
        let revoked = parse(&["--fault", r#"{"kind":"wrong_key"}"#], &[]).unwrap();
        assert_eq!(revoked.fault.unwrap().kind, crate::FaultKind::WrongKey);
        let set = parse(
            &["4600", "--rate-limit", "0", "--language", "pt"],
            &[
                ("AC_SANDBOX_RATE_LIMIT", "9"),
                ("AC_SANDBOX_FAULT", r#"{"kind":"empty"}"#),
            ],
        )
        .unwrap();
        assert_eq!((set.port, set.requests_per_second), (4600, 0));
        assert_eq!(set.language, Language::Portuguese);
        assert!(set.fault.is_some());
    }

    #[test]
    fn bad_settings_are_named() {
        assert!(
            parse(&["--rate-limit", "fast"], &[])
                .unwrap_err()
                .contains("fast")
        );
        assert!(
            parse(&["--seed", "/no/such/seed.toml"], &[])
                .unwrap_err()
                .contains("/no/such")
        );
        assert!(
            parse(&["--fault"], &[])
                .unwrap_err()
                .contains("needs a value")
        );
        assert!(
            parse(&["--colour", "x"], &[])
                .unwrap_err()
                .contains("--colour")
        );
        assert!(parse(&[], &[("AC_SANDBOX_LANGUAGE", "fr")]).is_err());
        for status in ["forbidden", "99", "700", "-1"] {
            assert!(
                parse(&["--bad-key-status", status], &[])
                    .unwrap_err()
                    .contains(status),
                "{status}"
            );
        }
        assert!(parse(&[], &[("AC_SANDBOX_FAULT", r#"{"kind":"slow"}"#)]).is_err());
    }
}

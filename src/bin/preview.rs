//! `preview EVENT.json [--mapping FILE] [--secret FILE] [--lookup FILE]`: what the webhook
//! function would do with a Function URL event (route, verification, submission, the exact
//! `contact_sync` fields or bulk import bodies), without any network. For a sender whose
//! webhooks carry only ids, it names the lookup; `--lookup` maps a saved API answer.

use std::io::Write;
use std::process::ExitCode;

use ac_webhook_sync::aws::lambda::http::from_json;
use ac_webhook_sync::mapping::Mapping;
use ac_webhook_sync::secret::AppSecret;

const USAGE: &str =
    "usage: preview EVENT.json [--mapping FILE] [--secret FILE] [--lookup SAVED-API-ANSWER.json]";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(report) => {
            // A closed pipe (`| head`) is not an error worth a panic.
            let _ = writeln!(std::io::stdout(), "{report}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("{message}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Vec<String>) -> Result<String, String> {
    let mut event = None;
    let mut mapping_file = std::env::var("MAPPING_FILE").ok();
    let mut secret_file =
        std::env::var("SECRET_FILE").unwrap_or_else(|_| "local/secret.json".into());
    let mut lookup_file = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--mapping" => mapping_file = Some(args.next().ok_or(USAGE)?),
            "--secret" => secret_file = args.next().ok_or(USAGE)?,
            "--lookup" => lookup_file = Some(args.next().ok_or(USAGE)?),
            "-h" | "--help" => return Err(USAGE.into()),
            _ if event.is_none() => event = Some(arg),
            _ => return Err(USAGE.into()),
        }
    }
    let event = event.ok_or(USAGE)?;
    let read = |path: &str| std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"));
    let mapping = match &mapping_file {
        Some(path) => Mapping::from_toml(&read(path)?),
        None => Mapping::bundled(),
    }
    .map_err(|e| format!("mapping: {e}"))?;
    let secret =
        AppSecret::from_json(&read(&secret_file)?).map_err(|e| format!("{secret_file}: {e}"))?;
    let request = from_json(&read(&event)?).map_err(|e| format!("{event}: {e}"))?;
    let found = match &lookup_file {
        Some(path) => {
            Some(serde_json::from_str(&read(path)?).map_err(|e| format!("{path}: not JSON: {e}"))?)
        }
        None => None,
    };
    let report = ac_webhook_sync::preview::preview_found(&mapping, &secret, &request, found);
    serde_json::to_string_pretty(&report).map_err(|e| e.to_string())
}

//! `ac-sandbox`: a local ActiveCampaign sandbox (`contact_sync`, `users/me`, the Bulk Contact
//! Importer, wrong keys answered as ActiveCampaign answers them, rate limits, faults, JSON
//! views) for runs without an account. `ac-sandbox --help` for usage.

use std::process::ExitCode;

use ac_sandbox::{SandboxSettings, run};

#[tokio::main]
async fn main() -> ExitCode {
    let result = match SandboxSettings::from_env() {
        Ok(settings) => run(settings).await.map_err(|e| e.to_string()),
        Err(error) => Err(error.to_string()),
    };
    result.map_or_else(
        |message| {
            eprintln!("{message}");
            ExitCode::from(2)
        },
        |()| ExitCode::SUCCESS,
    )
}
